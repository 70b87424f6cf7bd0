extension OpenAPIDocument {
    /// The API's OpenAPI 3.1 description (served at /api/v1/openapi.yaml and /api/v1/openapi.json).
    public static let yaml = #"""
        openapi: 3.1.0
        info:
          title: Gatehouse API
          version: 1.0.0
          summary: HTTP API of Gatehouse, the PostgreSQL access gateway.
          description: |
            Sign in, exchange a login token for short-lived database access tokens, watch and end live
            sessions, read and verify the tamper-evident audit trail, answer step-up challenges and approve
            held statements, request just-in-time roles, and read or dry-run the policy.

            Every route needs a login token (from `POST /api/v1/login`, or a service account's token) as a
            bearer token, except `POST /api/v1/login`, `GET /api/v1/health` and the OpenAPI document itself.
            Access tokens (the PostgreSQL passwords) are not accepted here.

            Members of the `admins` group may do everything; members of `auditors` may read everything
            (users, groups, every session, request, challenge and audit event) but change nothing that
            belongs to someone else.

            Every error answers with `{"error": {"code": "...", "message": "..."}}`; `rate_limited` answers
            carry a `Retry-After` header (seconds).
        servers:
          - url: /
        tags:
          - name: auth
            description: Signing in and out, and who the caller is.
          - name: tokens
            description: Access tokens for PostgreSQL sessions, service account tokens, revocation.
          - name: sessions
            description: Live PostgreSQL sessions through the gateway.
          - name: audit
            description: The hash-chained audit trail.
          - name: users
            description: Users, groups, service accounts and passwords.
          - name: mfa
            description: Enrolling a second factor (TOTP).
          - name: challenges
            description: Statements held for step-up verification or approval by another person.
          - name: requests
            description: Requests for just-in-time elevated roles, and the roles one may request.
          - name: grants
            description: Elevated roles granted and active now.
          - name: policy
            description: The guardrail policy and its dry run.
          - name: meta
            description: Health, metrics, configured connections and this document.
        security:
          - bearerAuth: []
        paths:
          /api/v1/openapi.yaml:
            get:
              tags: [meta]
              operationId: getOpenAPIYAML
              summary: This OpenAPI document as YAML
              description: "Who may call: anyone; no token needed."
              security: []
              responses:
                '200':
                  description: The OpenAPI 3.1 document.
                  content:
                    application/yaml:
                      schema:
                        type: string
          /api/v1/openapi.json:
            get:
              tags: [meta]
              operationId: getOpenAPIJSON
              summary: This OpenAPI document as JSON
              description: "Who may call: anyone; no token needed."
              security: []
              responses:
                '200':
                  description: The OpenAPI 3.1 document.
                  content:
                    application/json:
                      schema:
                        type: object
                '500':
                  $ref: '#/components/responses/InternalError'
          /api/v1/health:
            get:
              tags: [meta]
              operationId: getHealth
              summary: Liveness and the number of live sessions
              description: "Who may call: anyone; no token needed."
              security: []
              responses:
                '200':
                  description: The gateway is up.
                  content:
                    application/json:
                      schema:
                        $ref: '#/components/schemas/Health'
          /api/v1/login:
            post:
              tags: [auth]
              operationId: login
              summary: Sign in and receive a login token
              description: |
                Who may call: anyone; no token needed.

                Checks the password and, when the user has enrolled a second factor, the TOTP `code`.
                Every failure is audited. Attempts are throttled: 10 at once and 10 a minute per source
                address, 5 at once and 5 a minute per account (`429 rate_limited` with `Retry-After`).
                Too many wrong codes lock the second factor for a while (`429 locked_out`).
              security: []
              requestBody:
                required: true
                content:
                  application/json:
                    schema:
                      $ref: '#/components/schemas/LoginRequest'
              responses:
                '200':
                  description: A login token (use it as the bearer token for this API).
                  content:
                    application/json:
                      schema:
                        $ref: '#/components/schemas/TokenResponse'
                '400':
                  $ref: '#/components/responses/BadRequest'
                '401':
                  description: |
                    `login_failed` (wrong user or password, disabled or expired account),
                    `second_factor_required` (the user has a second factor and gave no `code`) or
                    `wrong_code`.
                  content:
                    application/json:
                      schema:
                        $ref: '#/components/schemas/Error'
                '409':
                  $ref: '#/components/responses/Conflict'
                '429':
                  $ref: '#/components/responses/TooManyRequests'
                '500':
                  $ref: '#/components/responses/InternalError'
          /api/v1/logout:
            post:
              tags: [auth]
              operationId: logout
              summary: Revoke the login token of this request
              description: "Who may call: any signed-in user (it revokes the caller's own login token)."
              responses:
                '200':
                  description: The token is revoked.
                  content:
                    application/json:
                      schema:
                        $ref: '#/components/schemas/Done'
                '401':
                  $ref: '#/components/responses/Unauthorized'
                '500':
                  $ref: '#/components/responses/InternalError'
          /api/v1/me:
            get:
              tags: [auth]
              operationId: getMe
              summary: The caller, their groups and when their login ends
              description: "Who may call: any signed-in user (about themself)."
              responses:
                '200':
                  description: The caller.
                  content:
                    application/json:
                      schema:
                        $ref: '#/components/schemas/Me'
                '401':
                  $ref: '#/components/responses/Unauthorized'
          /api/v1/tokens:
            post:
              tags: [tokens]
              operationId: issueAccessToken
              summary: Issue an access token (a PostgreSQL password)
              description: |
                Who may call: any signed-in user, for themself.

                The access token is the password for a PostgreSQL session through the gateway. Its
                lifetime is `ttl` (the configured default when absent), at most the configured maximum,
                and never beyond the end of the caller's login. The body may be left out.
              requestBody:
                required: false
                content:
                  application/json:
                    schema:
                      $ref: '#/components/schemas/TokenRequest'
              responses:
                '200':
                  description: The access token.
                  content:
                    application/json:
                      schema:
                        $ref: '#/components/schemas/TokenResponse'
                '400':
                  $ref: '#/components/responses/BadRequest'
                '401':
                  $ref: '#/components/responses/Unauthorized'
                '500':
                  $ref: '#/components/responses/InternalError'
          /api/v1/tokens/revoke:
            post:
              tags: [tokens]
              operationId: revokeTokens
              summary: Revoke one token, or every token of a user
              description: |
                Who may call: any signed-in user for their own tokens (own resources only); admins for
                anyone's.

                Give exactly one of `token` (a login or access token to revoke) or `user` (revoke every
                token of that user issued until now).
              requestBody:
                required: true
                content:
                  application/json:
                    schema:
                      $ref: '#/components/schemas/RevokeRequest'
              responses:
                '200':
                  description: What was revoked.
                  content:
                    application/json:
                      schema:
                        $ref: '#/components/schemas/RevokeResponse'
                '400':
                  $ref: '#/components/responses/BadRequest'
                '401':
                  $ref: '#/components/responses/Unauthorized'
                '403':
                  $ref: '#/components/responses/Forbidden'
                '404':
                  $ref: '#/components/responses/NotFound'
                '500':
                  $ref: '#/components/responses/InternalError'
          /api/v1/tokens/service:
            post:
              tags: [tokens]
              operationId: issueServiceToken
              summary: Issue a service account's API token
              description: |
                Who may call: admins only.

                Issues a login token with a long lifetime for a declared, active service account (for
                example a metrics scraper). `ttl` is required and at most the configured maximum.
              requestBody:
                required: true
                content:
                  application/json:
                    schema:
                      $ref: '#/components/schemas/ServiceTokenRequest'
              responses:
                '200':
                  description: The service account's token.
                  content:
                    application/json:
                      schema:
                        $ref: '#/components/schemas/TokenResponse'
                '400':
                  $ref: '#/components/responses/BadRequest'
                '401':
                  $ref: '#/components/responses/Unauthorized'
                '403':
                  $ref: '#/components/responses/Forbidden'
                '404':
                  $ref: '#/components/responses/NotFound'
                '500':
                  $ref: '#/components/responses/InternalError'
          /api/v1/sessions:
            get:
              tags: [sessions]
              operationId: listSessions
              summary: Live PostgreSQL sessions
              description: |
                Who may call: any signed-in user, who sees their own sessions only; admins and auditors
                see every session.
              responses:
                '200':
                  description: The live sessions the caller may see.
                  content:
                    application/json:
                      schema:
                        $ref: '#/components/schemas/Sessions'
                '401':
                  $ref: '#/components/responses/Unauthorized'
          /api/v1/sessions/{id}:
            delete:
              tags: [sessions]
              operationId: terminateSession
              summary: End a live session
              description: |
                Who may call: the session's own user (own resources only); admins for any session.

                The termination is audited before the session is cut.
              parameters:
                - name: id
                  in: path
                  required: true
                  description: The session id.
                  schema:
                    type: string
                - name: reason
                  in: query
                  required: false
                  description: Why; `terminated by <caller>` when absent.
                  schema:
                    type: string
                - name: revoke_tokens
                  in: query
                  required: false
                  description: |
                    `true`: also revoke every token of the session's user issued until now (admins only), so the
                    client cannot reconnect with the token it holds; the user must sign in again.
                  schema:
                    type: boolean
              responses:
                '200':
                  description: The session is ended.
                  content:
                    application/json:
                      schema:
                        $ref: '#/components/schemas/TerminateResponse'
                '401':
                  $ref: '#/components/responses/Unauthorized'
                '403':
                  $ref: '#/components/responses/Forbidden'
                '404':
                  $ref: '#/components/responses/NotFound'
                '500':
                  $ref: '#/components/responses/InternalError'
          /api/v1/audit:
            get:
              tags: [audit]
              operationId: listAuditEvents
              summary: A page of audit events
              description: |
                Who may call: any signed-in user, who reads only the events they caused (their own
                `actor`; asking for another actor is `403`); admins and auditors read the whole trail.

                Without `after` (and without `order`), the newest events come first.
              parameters:
                - $ref: '#/components/parameters/AuditType'
                - $ref: '#/components/parameters/AuditActor'
                - $ref: '#/components/parameters/AuditSession'
                - $ref: '#/components/parameters/AuditConnection'
                - $ref: '#/components/parameters/AuditSince'
                - $ref: '#/components/parameters/AuditUntil'
                - $ref: '#/components/parameters/AuditAfter'
                - $ref: '#/components/parameters/AuditBefore'
                - name: limit
                  in: query
                  required: false
                  description: Events on the page (default 100, at most 10000).
                  schema:
                    type: integer
                    minimum: 1
                    maximum: 10000
                    default: 100
                - $ref: '#/components/parameters/AuditOrder'
              responses:
                '200':
                  description: The events.
                  content:
                    application/json:
                      schema:
                        $ref: '#/components/schemas/AuditPage'
                '400':
                  $ref: '#/components/responses/BadRequest'
                '401':
                  $ref: '#/components/responses/Unauthorized'
                '403':
                  $ref: '#/components/responses/Forbidden'
          /api/v1/audit/export:
            get:
              tags: [audit]
              operationId: exportAudit
              summary: The filtered audit trail as JSON lines
              description: |
                Who may call: any signed-in user, who exports only the events they caused (their own
                `actor`); admins and auditors export the whole trail.

                The answer is streamed oldest first, one `AuditEvent` JSON object (keys sorted) per line,
                as an attachment `gatehouse-audit.jsonl`. `order` is checked but ignored. Without `limit`,
                every matching event is exported.
              parameters:
                - $ref: '#/components/parameters/AuditType'
                - $ref: '#/components/parameters/AuditActor'
                - $ref: '#/components/parameters/AuditSession'
                - $ref: '#/components/parameters/AuditConnection'
                - $ref: '#/components/parameters/AuditSince'
                - $ref: '#/components/parameters/AuditUntil'
                - $ref: '#/components/parameters/AuditAfter'
                - $ref: '#/components/parameters/AuditBefore'
                - name: limit
                  in: query
                  required: false
                  description: At most this many events (at most 10000); every matching event when absent.
                  schema:
                    type: integer
                    minimum: 1
                    maximum: 10000
                - $ref: '#/components/parameters/AuditOrder'
              responses:
                '200':
                  description: Newline-delimited JSON, one `AuditEvent` per line.
                  headers:
                    Content-Disposition:
                      description: "`attachment; filename=\"gatehouse-audit.jsonl\"`"
                      schema:
                        type: string
                  content:
                    application/x-ndjson:
                      schema:
                        type: string
                        description: One AuditEvent (see the AuditEvent schema) as JSON per line.
                '400':
                  $ref: '#/components/responses/BadRequest'
                '401':
                  $ref: '#/components/responses/Unauthorized'
          /api/v1/audit/verify:
            get:
              tags: [audit]
              operationId: verifyAuditChain
              summary: Verify the whole audit hash chain
              description: "Who may call: admins and auditors."
              responses:
                '200':
                  description: The verdict on the whole chain.
                  content:
                    application/json:
                      schema:
                        $ref: '#/components/schemas/AuditVerification'
                '401':
                  $ref: '#/components/responses/Unauthorized'
                '403':
                  $ref: '#/components/responses/Forbidden'
          /api/v1/users:
            get:
              tags: [users]
              operationId: listUsers
              summary: Every user and service account
              description: "Who may call: admins and auditors."
              responses:
                '200':
                  description: The users.
                  content:
                    application/json:
                      schema:
                        $ref: '#/components/schemas/Users'
                '401':
                  $ref: '#/components/responses/Unauthorized'
                '403':
                  $ref: '#/components/responses/Forbidden'
          /api/v1/service-accounts:
            get:
              tags: [users]
              operationId: listServiceAccounts
              summary: The service accounts
              description: "Who may call: admins and auditors. The users of kind `service` only."
              responses:
                '200':
                  description: The service accounts.
                  content:
                    application/json:
                      schema:
                        $ref: '#/components/schemas/Users'
                '401':
                  $ref: '#/components/responses/Unauthorized'
                '403':
                  $ref: '#/components/responses/Forbidden'
          /api/v1/groups:
            get:
              tags: [users]
              operationId: listGroups
              summary: Groups and their (enabled) members
              description: |
                Who may call: admins and auditors.

                Every configured group plus `admins` and `auditors`, and any group a user belongs to;
                disabled users are left out of the member lists.
              responses:
                '200':
                  description: The groups, sorted by name.
                  content:
                    application/json:
                      schema:
                        $ref: '#/components/schemas/Groups'
                '401':
                  $ref: '#/components/responses/Unauthorized'
                '403':
                  $ref: '#/components/responses/Forbidden'
          /api/v1/users/{name}/password:
            put:
              tags: [users]
              operationId: setPassword
              summary: Set a user's password
              description: |
                Who may call: any signed-in user for their own password (own resources only); admins for
                anyone's.

                The password needs at least 12 characters.
              parameters:
                - name: name
                  in: path
                  required: true
                  description: The user name.
                  schema:
                    type: string
              requestBody:
                required: true
                content:
                  application/json:
                    schema:
                      $ref: '#/components/schemas/PasswordRequest'
              responses:
                '200':
                  description: The password is set.
                  content:
                    application/json:
                      schema:
                        $ref: '#/components/schemas/Done'
                '400':
                  $ref: '#/components/responses/BadRequest'
                '401':
                  $ref: '#/components/responses/Unauthorized'
                '403':
                  $ref: '#/components/responses/Forbidden'
                '404':
                  $ref: '#/components/responses/NotFound'
                '500':
                  $ref: '#/components/responses/InternalError'
          /api/v1/connections:
            get:
              tags: [meta]
              operationId: listConnections
              summary: The configured database connections
              description: |
                Who may call: any signed-in user. Where one can connect; the upstream credentials are
                never shown.
              responses:
                '200':
                  description: The connections.
                  content:
                    application/json:
                      schema:
                        $ref: '#/components/schemas/Connections'
                '401':
                  $ref: '#/components/responses/Unauthorized'
          /api/v1/policy:
            get:
              tags: [policy]
              operationId: getPolicy
              summary: The policy in force
              description: |
                Who may call: any signed-in user (a refusal names its rule, so everyone may read what
                the rules ask for).
              responses:
                '200':
                  description: The policy.
                  content:
                    application/json:
                      schema:
                        $ref: '#/components/schemas/PolicyView'
                '401':
                  $ref: '#/components/responses/Unauthorized'
          /api/v1/policy/test:
            post:
              tags: [policy]
              operationId: testPolicy
              summary: Dry-run a statement against the policy
              description: |
                Who may call: any signed-in user, testing as themself; admins and auditors may also test
                as any declared user (`user`).

                Nothing is run: the answer is what the gateway would decide for `sql` on `connection`,
                with the inspection of the statement.
              requestBody:
                required: true
                content:
                  application/json:
                    schema:
                      $ref: '#/components/schemas/PolicyTestRequest'
              responses:
                '200':
                  description: The decision and the inspection.
                  content:
                    application/json:
                      schema:
                        $ref: '#/components/schemas/PolicyTestResult'
                '400':
                  $ref: '#/components/responses/BadRequest'
                '401':
                  $ref: '#/components/responses/Unauthorized'
                '403':
                  $ref: '#/components/responses/Forbidden'
                '404':
                  $ref: '#/components/responses/NotFound'
          /api/v1/roles:
            get:
              tags: [requests]
              operationId: listRoles
              summary: Roles the caller may request
              description: |
                Who may call: any signed-in user, who sees the roles they may request; admins and
                auditors see every requestable role. Empty when no roles are configured.
              responses:
                '200':
                  description: The roles.
                  content:
                    application/json:
                      schema:
                        $ref: '#/components/schemas/Roles'
                '401':
                  $ref: '#/components/responses/Unauthorized'
          /api/v1/grants:
            get:
              tags: [grants]
              operationId: listGrants
              summary: Grants active now
              description: |
                Who may call: any signed-in user, who sees their own active grants only; admins and
                auditors see every active grant. Soonest to end first; empty when no roles are configured.
              responses:
                '200':
                  description: The active grants.
                  content:
                    application/json:
                      schema:
                        $ref: '#/components/schemas/Grants'
                '401':
                  $ref: '#/components/responses/Unauthorized'
          /api/v1/requests:
            post:
              tags: [requests]
              operationId: submitAccessRequest
              summary: Request an elevated role
              description: |
                Who may call: any signed-in user who is among the role's requesters (otherwise `403`).

                The request waits for the role's approvers unless its auto-approval conditions hold.
                With `break_glass: true` (for roles that allow it) the role activates at once; the
                caller's TOTP `code` is then required. `404` when no requestable roles are configured or
                the role is unknown.
              requestBody:
                required: true
                content:
                  application/json:
                    schema:
                      $ref: '#/components/schemas/AccessRequestBody'
              responses:
                '200':
                  description: The request as filed (pending, or approved when auto-approved or break-glass).
                  content:
                    application/json:
                      schema:
                        $ref: '#/components/schemas/AccessRequestView'
                '400':
                  $ref: '#/components/responses/BadRequest'
                '401':
                  $ref: '#/components/responses/Unauthorized'
                '403':
                  $ref: '#/components/responses/Forbidden'
                '404':
                  $ref: '#/components/responses/NotFound'
                '500':
                  $ref: '#/components/responses/InternalError'
            get:
              tags: [requests]
              operationId: listAccessRequests
              summary: Access requests the caller may see
              description: |
                Who may call: any signed-in user, who sees their own requests and those for roles they
                approve (members of the role's approver groups); admins and auditors see every request.
                Newest first. `404` when no requestable roles are configured.
              responses:
                '200':
                  description: The requests.
                  content:
                    application/json:
                      schema:
                        $ref: '#/components/schemas/AccessRequests'
                '401':
                  $ref: '#/components/responses/Unauthorized'
                '404':
                  $ref: '#/components/responses/NotFound'
          /api/v1/requests/{id}/approve:
            post:
              tags: [requests]
              operationId: approveAccessRequest
              summary: Approve a pending access request
              description: |
                Who may call: approvers, i.e. members of the role's approver groups; never the requester.

                The grant activates once the role's number of approvals is in. When the role asks
                approvers for their own second factor, give `code` (otherwise `401
                second_factor_required`). The body may be left out.
              parameters:
                - $ref: '#/components/parameters/RequestId'
              requestBody:
                required: false
                content:
                  application/json:
                    schema:
                      $ref: '#/components/schemas/CodeRequest'
              responses:
                '200':
                  description: The request after the approval.
                  content:
                    application/json:
                      schema:
                        $ref: '#/components/schemas/AccessRequestView'
                '400':
                  $ref: '#/components/responses/BadRequest'
                '401':
                  $ref: '#/components/responses/Unauthorized'
                '403':
                  $ref: '#/components/responses/Forbidden'
                '404':
                  $ref: '#/components/responses/NotFound'
                '409':
                  $ref: '#/components/responses/Conflict'
                '500':
                  $ref: '#/components/responses/InternalError'
          /api/v1/requests/{id}/deny:
            post:
              tags: [requests]
              operationId: denyAccessRequest
              summary: Deny a pending access request
              description: |
                Who may call: approvers, i.e. members of the role's approver groups; never the requester.

                A denial wins over approvals already given. The body (a `reason`) may be left out.
              parameters:
                - $ref: '#/components/parameters/RequestId'
              requestBody:
                required: false
                content:
                  application/json:
                    schema:
                      $ref: '#/components/schemas/DenyRequest'
              responses:
                '200':
                  description: The denied request.
                  content:
                    application/json:
                      schema:
                        $ref: '#/components/schemas/AccessRequestView'
                '400':
                  $ref: '#/components/responses/BadRequest'
                '401':
                  $ref: '#/components/responses/Unauthorized'
                '403':
                  $ref: '#/components/responses/Forbidden'
                '404':
                  $ref: '#/components/responses/NotFound'
                '409':
                  $ref: '#/components/responses/Conflict'
                '500':
                  $ref: '#/components/responses/InternalError'
          /api/v1/requests/{id}/revoke:
            post:
              tags: [requests]
              operationId: revokeAccessRequest
              summary: Withdraw a pending request or end an approved grant early
              description: |
                Who may call: the requester (own resources only), approvers (members of the role's
                approver groups), or admins.
              parameters:
                - $ref: '#/components/parameters/RequestId'
              responses:
                '200':
                  description: The revoked request.
                  content:
                    application/json:
                      schema:
                        $ref: '#/components/schemas/AccessRequestView'
                '401':
                  $ref: '#/components/responses/Unauthorized'
                '403':
                  $ref: '#/components/responses/Forbidden'
                '404':
                  $ref: '#/components/responses/NotFound'
                '409':
                  $ref: '#/components/responses/Conflict'
                '500':
                  $ref: '#/components/responses/InternalError'
          /api/v1/mfa/enroll:
            post:
              tags: [mfa]
              operationId: enrollMFA
              summary: Start enrolling a TOTP second factor
              description: |
                Who may call: any signed-in user, for themself; an admin, for another user (`user`).

                Returns the secret and an `otpauth://` URI for an authenticator app; confirm with
                `POST /api/v1/mfa/confirm`. A token alone cannot add a second factor: a first one
                needs the caller's `password` (`401 password_required` without it, `401 login_failed`
                when it is wrong; `403` for an account without a password, whose first second factor
                an admin enrols); replacing a confirmed one needs a `code` from it
                (`401 second_factor_required`). `404` when step-up is not enabled on this gateway or
                the `user` does not exist.
              requestBody:
                required: false
                content:
                  application/json:
                    schema:
                      $ref: '#/components/schemas/EnrolRequest'
              responses:
                '200':
                  description: The new (unconfirmed) enrolment.
                  content:
                    application/json:
                      schema:
                        $ref: '#/components/schemas/Enrolment'
                '401':
                  $ref: '#/components/responses/Unauthorized'
                '403':
                  $ref: '#/components/responses/Forbidden'
                '404':
                  $ref: '#/components/responses/NotFound'
          /api/v1/mfa/confirm:
            post:
              tags: [mfa]
              operationId: confirmMFA
              summary: Confirm the enrolment with a code from the authenticator
              description: |
                Who may call: any signed-in user, for their own enrolment.

                `code` is required. `404` when step-up is not enabled; `409` when there is no enrolment
                to confirm.
              requestBody:
                required: true
                content:
                  application/json:
                    schema:
                      $ref: '#/components/schemas/CodeRequest'
              responses:
                '200':
                  description: The second factor is active.
                  content:
                    application/json:
                      schema:
                        $ref: '#/components/schemas/Done'
                '400':
                  $ref: '#/components/responses/BadRequest'
                '401':
                  $ref: '#/components/responses/Unauthorized'
                '404':
                  $ref: '#/components/responses/NotFound'
                '409':
                  $ref: '#/components/responses/Conflict'
                '429':
                  $ref: '#/components/responses/TooManyRequests'
          /api/v1/challenges:
            get:
              tags: [challenges]
              operationId: listChallenges
              summary: Pending challenges the caller may act on
              description: |
                Who may call: any signed-in user, who sees their own pending challenges and the approval
                challenges naming them (or a group of theirs) as approvers; admins and auditors see every
                pending challenge. Oldest first. `404` when step-up is not enabled.
              responses:
                '200':
                  description: The pending challenges.
                  content:
                    application/json:
                      schema:
                        $ref: '#/components/schemas/Challenges'
                '401':
                  $ref: '#/components/responses/Unauthorized'
                '404':
                  $ref: '#/components/responses/NotFound'
          /api/v1/challenges/{id}/verify:
            post:
              tags: [challenges]
              operationId: verifyChallenge
              summary: Answer a step-up challenge with a TOTP code
              description: |
                Who may call: the user whose session the step-up challenge holds (own resources only).

                `code` is required. A right code releases the held statement; too many wrong codes fail
                the challenge. Code attempts are throttled: 20 at once and 20 a minute per source
                address, 10 at once and 10 a minute per user (`429 rate_limited` with `Retry-After`).
              parameters:
                - $ref: '#/components/parameters/ChallengeId'
              requestBody:
                required: true
                content:
                  application/json:
                    schema:
                      $ref: '#/components/schemas/CodeRequest'
              responses:
                '200':
                  description: The verified challenge.
                  content:
                    application/json:
                      schema:
                        $ref: '#/components/schemas/ChallengeView'
                '400':
                  $ref: '#/components/responses/BadRequest'
                '401':
                  $ref: '#/components/responses/Unauthorized'
                '403':
                  $ref: '#/components/responses/Forbidden'
                '404':
                  $ref: '#/components/responses/NotFound'
                '409':
                  $ref: '#/components/responses/Conflict'
                '429':
                  $ref: '#/components/responses/TooManyRequests'
          /api/v1/challenges/{id}/approve:
            post:
              tags: [challenges]
              operationId: approveChallenge
              summary: Approve a held statement
              description: |
                Who may call: approvers named by the challenge (a user, or a member of a `group:NAME`
                entry); never the statement's own user.

                When the rule asks approvers for their own second factor, give `code` (otherwise `401
                second_factor_required`); code attempts are throttled as for verify. The body may be left
                out.
              parameters:
                - $ref: '#/components/parameters/ChallengeId'
              requestBody:
                required: false
                content:
                  application/json:
                    schema:
                      $ref: '#/components/schemas/CodeRequest'
              responses:
                '200':
                  description: The approved challenge; the statement runs.
                  content:
                    application/json:
                      schema:
                        $ref: '#/components/schemas/ChallengeView'
                '400':
                  $ref: '#/components/responses/BadRequest'
                '401':
                  $ref: '#/components/responses/Unauthorized'
                '403':
                  $ref: '#/components/responses/Forbidden'
                '404':
                  $ref: '#/components/responses/NotFound'
                '409':
                  $ref: '#/components/responses/Conflict'
                '429':
                  $ref: '#/components/responses/TooManyRequests'
          /api/v1/challenges/{id}/deny:
            post:
              tags: [challenges]
              operationId: denyChallenge
              summary: Deny a held statement
              description: |
                Who may call: approvers named by the challenge (a user, or a member of a `group:NAME`
                entry); never the statement's own user. The body (a `reason`) may be left out.
              parameters:
                - $ref: '#/components/parameters/ChallengeId'
              requestBody:
                required: false
                content:
                  application/json:
                    schema:
                      $ref: '#/components/schemas/DenyRequest'
              responses:
                '200':
                  description: The denied challenge; the statement will not run.
                  content:
                    application/json:
                      schema:
                        $ref: '#/components/schemas/ChallengeView'
                '400':
                  $ref: '#/components/responses/BadRequest'
                '401':
                  $ref: '#/components/responses/Unauthorized'
                '403':
                  $ref: '#/components/responses/Forbidden'
                '404':
                  $ref: '#/components/responses/NotFound'
                '409':
                  $ref: '#/components/responses/Conflict'
          /metrics:
            get:
              tags: [meta]
              operationId: getMetrics
              summary: Prometheus metrics
              description: |
                Who may call: admins and auditors (a scraper uses a service account's token).

                Prometheus text exposition format. `404` when metrics are not collected.
              responses:
                '200':
                  description: The metrics.
                  content:
                    text/plain:
                      schema:
                        type: string
                '401':
                  $ref: '#/components/responses/Unauthorized'
                '403':
                  $ref: '#/components/responses/Forbidden'
                '404':
                  $ref: '#/components/responses/NotFound'
        components:
          securitySchemes:
            bearerAuth:
              type: http
              scheme: bearer
              bearerFormat: JWT
              description: |
                A login token from `POST /api/v1/login` (or a service account's token from
                `POST /api/v1/tokens/service`), as `Authorization: Bearer <token>`.
          parameters:
            RequestId:
              name: id
              in: path
              required: true
              description: The access request id (`req-...`).
              schema:
                type: string
            ChallengeId:
              name: id
              in: path
              required: true
              description: The challenge id.
              schema:
                type: string
            AuditType:
              name: type
              in: query
              required: false
              description: |
                An event type (`statement.denied`), or a family of types ending in `.` or `*`
                (`statement.`, `grant.*`).
              schema:
                type: string
            AuditActor:
              name: actor
              in: query
              required: false
              description: |
                Events caused by this user. Users other than admins and auditors may only give their own
                name (they always read their own events).
              schema:
                type: string
            AuditSession:
              name: session
              in: query
              required: false
              description: Events of this session id.
              schema:
                type: string
            AuditConnection:
              name: connection
              in: query
              required: false
              description: Events on this connection.
              schema:
                type: string
            AuditSince:
              name: since
              in: query
              required: false
              description: Events at or after this time (a date such as `2026-01-31` or an RFC 3339 time).
              schema:
                type: string
                examples:
                  - '2026-01-31T08:00:00Z'
            AuditUntil:
              name: until
              in: query
              required: false
              description: Events before this time (a date or an RFC 3339 time).
              schema:
                type: string
                examples:
                  - '2026-02-01'
            AuditAfter:
              name: after
              in: query
              required: false
              description: Events with a sequence number above this one (reading on, oldest first).
              schema:
                type: integer
                format: int64
                minimum: 0
            AuditBefore:
              name: before
              in: query
              required: false
              description: Events with a sequence number below this one.
              schema:
                type: integer
                format: int64
                minimum: 0
            AuditOrder:
              name: order
              in: query
              required: false
              description: |
                `asc` (oldest first) or `desc` (newest first). The default is newest first, or oldest
                first when `after` is given.
              schema:
                type: string
                enum: [asc, desc]
          headers:
            RetryAfter:
              description: Seconds until a retry may succeed (sent with `rate_limited`).
              schema:
                type: integer
                minimum: 1
          responses:
            BadRequest:
              description: "`bad_request`: the body is not the JSON the route expects, or a value is invalid."
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/Error'
            Unauthorized:
              description: |
                `unauthenticated` (missing, invalid, expired or revoked login token, or an inactive user;
                with `WWW-Authenticate: Bearer realm="gatehouse"`), or, on routes that check codes,
                `second_factor_required` or `wrong_code`.
              headers:
                WWW-Authenticate:
                  description: '`Bearer realm="gatehouse"` when the code is `unauthenticated`.'
                  schema:
                    type: string
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/Error'
            Forbidden:
              description: "`forbidden`: the caller may not do this."
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/Error'
            NotFound:
              description: "`not_found`: no such object, or the feature is not enabled on this gateway."
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/Error'
            Conflict:
              description: "`conflict`: the object is not in a state that allows this (already decided, expired, ...)."
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/Error'
            TooManyRequests:
              description: "`rate_limited` (with `Retry-After`) or `locked_out` (too many wrong codes)."
              headers:
                Retry-After:
                  $ref: '#/components/headers/RetryAfter'
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/Error'
            InternalError:
              description: "`internal_error`: for example the audit log cannot be written, so nothing was done."
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/Error'
          schemas:
            Error:
              type: object
              description: 'The body of every API error: `{"error": {"code": "...", "message": "..."}}`.'
              required: [error]
              properties:
                error:
                  type: object
                  required: [code, message]
                  properties:
                    code:
                      type: string
                      description: |
                        Stable machine-readable code. HTTP statuses: `bad_request` 400;
                        `unauthenticated`, `login_failed`, `second_factor_required`, `password_required`,
                        `wrong_code` 401;
                        `forbidden` 403; `not_found` 404; `conflict` 409; `locked_out`, `rate_limited` 429;
                        `internal_error` 500.
                      enum:
                        - bad_request
                        - unauthenticated
                        - forbidden
                        - not_found
                        - login_failed
                        - second_factor_required
                        - password_required
                        - wrong_code
                        - locked_out
                        - conflict
                        - rate_limited
                        - internal_error
                    message:
                      type: string
                      description: A sentence for people.
              examples:
                - error:
                    code: forbidden
                    message: this needs membership of the admins group
            Timestamp:
              type: string
              description: An RFC 3339 time in UTC with milliseconds.
              examples:
                - '2026-01-31T08:00:00.000Z'
            Duration:
              type: string
              description: A duration such as `15m`, `1h30m` or `30d`.
              examples:
                - '1h'
            Done:
              type: object
              required: [ok]
              properties:
                ok:
                  type: boolean
                  const: true
            Health:
              type: object
              required: [status, sessions]
              properties:
                status:
                  type: string
                  examples:
                    - ok
                sessions:
                  type: integer
                  description: Live PostgreSQL sessions.
            LoginRequest:
              type: object
              required: [user, password]
              properties:
                user:
                  type: string
                password:
                  type: string
                  format: password
                code:
                  type: string
                  description: The TOTP code, for users with a second factor.
            TokenResponse:
              type: object
              required: [token, id, user, groups, expires_at]
              properties:
                token:
                  type: string
                  description: The signed token.
                id:
                  type: string
                  description: The token id (for revocation and the audit trail).
                user:
                  type: string
                groups:
                  type: array
                  items:
                    type: string
                expires_at:
                  $ref: '#/components/schemas/Timestamp'
            TokenRequest:
              type: object
              properties:
                ttl:
                  $ref: '#/components/schemas/Duration'
                  description: Lifetime such as `15m`; the configured default when absent.
            ServiceTokenRequest:
              type: object
              required: [user, ttl]
              properties:
                user:
                  type: string
                  description: A declared service account.
                ttl:
                  $ref: '#/components/schemas/Duration'
                  description: Lifetime such as `30d`.
            RevokeRequest:
              type: object
              description: Exactly one of `token` and `user`.
              properties:
                token:
                  type: string
                  description: A token to revoke (its id and expiry are read from it).
                user:
                  type: string
                  description: Revoke every token of this user issued until now.
              oneOf:
                - required: [token]
                  not:
                    required: [user]
                - required: [user]
                  not:
                    required: [token]
            RevokeResponse:
              type: object
              required: [revoked]
              properties:
                revoked:
                  type: string
                  description: What was revoked, in words.
                  examples:
                    - every token of alice issued until now
            Me:
              type: object
              required: [user, groups, login_expires_at]
              properties:
                user:
                  type: string
                groups:
                  type: array
                  items:
                    type: string
                login_expires_at:
                  $ref: '#/components/schemas/Timestamp'
            Session:
              type: object
              required: [id, user, connection, source, application_name, started_at, tls]
              properties:
                id:
                  type: string
                user:
                  type: string
                connection:
                  type: string
                source:
                  type: string
                  description: The client's address.
                application_name:
                  type: string
                started_at:
                  $ref: '#/components/schemas/Timestamp'
                tls:
                  type: boolean
            Sessions:
              type: object
              required: [sessions]
              properties:
                sessions:
                  type: array
                  items:
                    $ref: '#/components/schemas/Session'
            TerminateResponse:
              type: object
              required: [terminated]
              properties:
                terminated:
                  type: string
                  description: The id of the ended session.
            AuditEventType:
              type: string
              description: Stable names of audit event types.
              enum:
                - gateway.start
                - gateway.stop
                - auth.success
                - auth.failure
                - login.success
                - login.failure
                - token.issued
                - token.revoked
                - session.start
                - session.end
                - session.terminated
                - session.refused
                - session.cancel
                - admin.bootstrap
                - audit.exported
                - admin.password_set
                - statement.allowed
                - statement.alert
                - statement.denied
                - statement.held
                - policy.loaded
                - policy.rejected
                - mfa.enrolled
                - mfa.confirmed
                - mfa.failure
                - mfa.locked_out
                - challenge.created
                - challenge.verified
                - challenge.failed
                - challenge.expired
                - challenge.approved
                - challenge.denied
                - challenge.cancelled
                - request.created
                - request.approved
                - request.denied
                - request.lapsed
                - grant.activated
                - grant.expired
                - grant.revoked
                - grant.break_glass
                - webhook.failed
            AuditEvent:
              type: object
              description: |
                One event of the tamper-evident audit chain. `hash` is SHA-256 over `prev_hash` and the
                canonical JSON of every other field. Absent optional fields are left out.
              required: [seq, time, type, detail, prev_hash, hash]
              properties:
                seq:
                  type: integer
                  format: int64
                  minimum: 1
                time:
                  $ref: '#/components/schemas/Timestamp'
                type:
                  $ref: '#/components/schemas/AuditEventType'
                actor:
                  type: string
                session:
                  type: string
                connection:
                  type: string
                source:
                  type: string
                detail:
                  type: object
                  additionalProperties:
                    type: string
                prev_hash:
                  type: string
                  description: The previous event's hash (64 zeros before the first event).
                  pattern: '^[0-9a-f]{64}$'
                hash:
                  type: string
                  pattern: '^[0-9a-f]{64}$'
              examples:
                - seq: 42
                  time: '2026-01-31T08:00:00.000Z'
                  type: login.success
                  actor: alice
                  source: '10.0.0.7'
                  detail:
                    token_id: '3f2a9c'
                    expires_at: '2026-01-31T20:00:00.000Z'
                    via: api
                  prev_hash: 'ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb'
                  hash: '3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d'
            AuditPage:
              type: object
              required: [events, next_after]
              properties:
                events:
                  type: array
                  items:
                    $ref: '#/components/schemas/AuditEvent'
                next_after:
                  type: integer
                  format: int64
                  description: |
                    The `seq` of the last event on the page. Reading oldest first (`after` or
                    `order=asc`), pass it as `after` to read on (on an empty page it is the `after`
                    given, or 0). Reading newest first, it is the oldest event of the page (0 when the
                    page is empty).
            AuditProblem:
              type: object
              required: [seq, reason]
              properties:
                seq:
                  type: integer
                  format: int64
                reason:
                  type: string
            AuditVerification:
              type: object
              required: [intact, events_checked, problems]
              properties:
                intact:
                  type: boolean
                events_checked:
                  type: integer
                last_seq:
                  type: integer
                  format: int64
                  description: Absent when the trail is empty.
                last_hash:
                  type: string
                  description: Absent when the trail is empty.
                problems:
                  type: array
                  description: Each break found, in order.
                  items:
                    $ref: '#/components/schemas/AuditProblem'
            PasswordRequest:
              type: object
              required: [password]
              properties:
                password:
                  type: string
                  format: password
                  minLength: 12
            Enrolment:
              type: object
              required: [uri, secret]
              properties:
                uri:
                  type: string
                  description: An `otpauth://totp/...` URI for an authenticator app.
                secret:
                  type: string
                  description: The TOTP secret (base32).
            EnrolRequest:
              type: object
              properties:
                password:
                  type: string
                  description: The caller's password, to enrol a first second factor.
                code:
                  type: string
                  description: A code from the caller's confirmed second factor, to replace it.
                user:
                  type: string
                  description: |
                    Admins only: enrol for this user instead (a lost authenticator, an account without
                    a password); the secret comes back to the admin, to hand over.
            CodeRequest:
              type: object
              properties:
                code:
                  type: string
                  description: A TOTP code from the caller's authenticator.
                  examples:
                    - '123456'
            DenyRequest:
              type: object
              properties:
                reason:
                  type: string
            ChallengeView:
              type: object
              required:
                - id
                - kind
                - state
                - user
                - session
                - connection
                - statement
                - fingerprint
                - rules
                - reason
                - approvers
                - created_at
                - expires_at
              properties:
                id:
                  type: string
                kind:
                  type: string
                  enum: [step_up, approve]
                  description: "`step_up`: the user proves it is them; `approve`: another person approves."
                state:
                  type: string
                  enum: [pending, verified, approved, denied, failed, expired, cancelled]
                user:
                  type: string
                  description: The user whose statement is held.
                session:
                  type: string
                connection:
                  type: string
                statement:
                  type: string
                  description: The held statement as the client sent it.
                fingerprint:
                  type: string
                rules:
                  type: array
                  description: The rules that held it.
                  items:
                    type: string
                reason:
                  type: string
                approvers:
                  type: array
                  description: Users or `group:NAME` who may approve (approve challenges only).
                  items:
                    type: string
                created_at:
                  $ref: '#/components/schemas/Timestamp'
                expires_at:
                  $ref: '#/components/schemas/Timestamp'
                decided_by:
                  type: string
            Challenges:
              type: object
              required: [challenges]
              properties:
                challenges:
                  type: array
                  items:
                    $ref: '#/components/schemas/ChallengeView'
            AccessRequestBody:
              type: object
              required: [role, duration]
              properties:
                role:
                  type: string
                connection:
                  type: string
                  description: The connection the grant is for (required by roles scoped to connections).
                duration:
                  $ref: '#/components/schemas/Duration'
                  description: How long the grant lasts, such as `30m` or `1h`.
                reason:
                  type: string
                start_at:
                  type: string
                  description: When the grant should start, as an RFC 3339 time; on approval when absent.
                break_glass:
                  type: boolean
                  description: Activate at once without approval (roles with break-glass only; needs `code`).
                code:
                  type: string
                  description: The caller's TOTP code (break-glass).
            AccessRequestView:
              type: object
              required:
                - id
                - requester
                - role
                - state
                - active
                - reason
                - duration
                - requested_at
                - approvals
                - break_glass
                - auto_approved
              properties:
                id:
                  type: string
                requester:
                  type: string
                role:
                  type: string
                connection:
                  type: string
                state:
                  type: string
                  enum: [pending, approved, denied, lapsed, revoked]
                active:
                  type: boolean
                  description: Whether the grant is in force now.
                reason:
                  type: string
                duration:
                  $ref: '#/components/schemas/Duration'
                requested_at:
                  $ref: '#/components/schemas/Timestamp'
                active_from:
                  $ref: '#/components/schemas/Timestamp'
                expires_at:
                  $ref: '#/components/schemas/Timestamp'
                approvals:
                  type: array
                  description: Approvers who approved so far.
                  items:
                    type: string
                denied_by:
                  type: string
                denial_reason:
                  type: string
                revoked_by:
                  type: string
                break_glass:
                  type: boolean
                auto_approved:
                  type: boolean
            AccessRequests:
              type: object
              required: [requests]
              properties:
                requests:
                  type: array
                  items:
                    $ref: '#/components/schemas/AccessRequestView'
            UserView:
              type: object
              required: [name, groups, kind, disabled, has_password, second_factor]
              properties:
                name:
                  type: string
                groups:
                  type: array
                  items:
                    type: string
                kind:
                  type: string
                  enum: [user, service]
                  description: "`user` (people) or `service` (API tokens only)."
                disabled:
                  type: boolean
                expires_at:
                  $ref: '#/components/schemas/Timestamp'
                has_password:
                  type: boolean
                second_factor:
                  type: boolean
                  description: Whether a second factor is enrolled.
            Users:
              type: object
              required: [users]
              properties:
                users:
                  type: array
                  items:
                    $ref: '#/components/schemas/UserView'
            GroupView:
              type: object
              required: [name, members]
              properties:
                name:
                  type: string
                members:
                  type: array
                  items:
                    type: string
            Groups:
              type: object
              required: [groups]
              properties:
                groups:
                  type: array
                  items:
                    $ref: '#/components/schemas/GroupView'
            ConnectionView:
              type: object
              required: [name, host, port, database, tls]
              properties:
                name:
                  type: string
                host:
                  type: string
                port:
                  type: integer
                database:
                  type: string
                tls:
                  type: string
                  enum: [disable, require, verify-full]
                  description: TLS towards the upstream server.
            Connections:
              type: object
              required: [connections]
              properties:
                connections:
                  type: array
                  items:
                    $ref: '#/components/schemas/ConnectionView'
            PolicyAction:
              type: string
              enum: [allow, alert, step_up, approve, deny]
            RuleView:
              type: object
              required: [name, action, mode, conditions, approvers]
              properties:
                name:
                  type: string
                action:
                  $ref: '#/components/schemas/PolicyAction'
                mode:
                  type: string
                  enum: [enforce, shadow]
                conditions:
                  type: array
                  description: "The rule's conditions as short readable lines (`kinds: update, delete`)."
                  items:
                    type: string
                message:
                  type: string
                hint:
                  type: string
                step_up_max_age:
                  $ref: '#/components/schemas/Duration'
                approvers:
                  type: array
                  items:
                    type: string
            PolicyView:
              type: object
              required: [default_action, unclassified_action, connection_defaults, rules]
              properties:
                default_action:
                  $ref: '#/components/schemas/PolicyAction'
                unclassified_action:
                  $ref: '#/components/schemas/PolicyAction'
                connection_defaults:
                  type: object
                  description: Default action per connection name.
                  additionalProperties:
                    $ref: '#/components/schemas/PolicyAction'
                rules:
                  type: array
                  items:
                    $ref: '#/components/schemas/RuleView'
            PolicyTestRequest:
              type: object
              required: [sql, connection]
              properties:
                sql:
                  type: string
                  description: The statement(s) to judge (at most 1 MiB).
                connection:
                  type: string
                user:
                  type: string
                  description: Test as this user (admins and auditors only); the caller when absent.
                source:
                  type: string
                  description: The client address to assume (default `127.0.0.1`).
                application:
                  type: string
                  description: The application_name to assume (default `psql`).
                country:
                  type: string
                  description: The client's country code to assume.
                roles:
                  type: array
                  description: Elevated roles to simulate, as if granted.
                  items:
                    type: string
                new_device:
                  type: boolean
                at:
                  type: string
                  description: When, as an RFC 3339 time; now when absent.
            PolicyTestResult:
              type: object
              required: [user, connection, decision, inspection, summaries]
              properties:
                user:
                  type: string
                connection:
                  type: string
                decision:
                  $ref: '#/components/schemas/Decision'
                inspection:
                  $ref: '#/components/schemas/Inspection'
                summaries:
                  type: array
                  description: One line per statement, as the audit log shows it.
                  items:
                    type: string
            MatchedRule:
              type: object
              required: [name, action, shadow, statement]
              additionalProperties: true
              properties:
                name:
                  type: string
                action:
                  $ref: '#/components/schemas/PolicyAction'
                shadow:
                  type: boolean
                message:
                  type: string
                hint:
                  type: string
                statement:
                  type: integer
                  description: The statement (0-based) of a multi-statement string the rule matched on.
            Decision:
              type: object
              description: The outcome for one query string (Swift's default Codable keys, camelCase).
              required: [action, matched, shadowed, reason, usedGrants, approvers, approverStepUp]
              additionalProperties: true
              properties:
                action:
                  $ref: '#/components/schemas/PolicyAction'
                matched:
                  type: array
                  description: Every enforced rule that matched, the deciding ones first.
                  items:
                    $ref: '#/components/schemas/MatchedRule'
                shadowed:
                  type: array
                  description: Shadow rules that matched.
                  items:
                    $ref: '#/components/schemas/MatchedRule'
                reason:
                  type: string
                hint:
                  type: string
                usedGrants:
                  type: array
                  items:
                    type: string
                stepUpMaxAge:
                  type: number
                  description: For step-up, the strictest freshness asked for, in seconds.
                approvers:
                  type: array
                  items:
                    type: string
                approverStepUp:
                  type: boolean
            TableName:
              type: object
              required: [name]
              additionalProperties: true
              properties:
                schema:
                  type: string
                name:
                  type: string
            StatementFacts:
              type: object
              description: The facts about one statement (Swift's default Codable keys, camelCase).
              required: [text, primary, kinds, fingerprint]
              additionalProperties: true
              properties:
                text:
                  type: string
                primary:
                  type: string
                  description: The top-level statement kind (`select`, `update`, `create`, ...).
                kinds:
                  type: array
                  description: Every effect found anywhere in the statement.
                  items:
                    type: string
                objectTypes:
                  type: array
                  items:
                    type: string
                tablesRead:
                  type: array
                  items:
                    $ref: '#/components/schemas/TableName'
                tablesWritten:
                  type: array
                  items:
                    $ref: '#/components/schemas/TableName'
                functions:
                  type: array
                  items:
                    type: string
                wherelessWrite:
                  type: boolean
                copyProgram:
                  type: boolean
                dynamic:
                  type: boolean
                preparedName:
                  type: string
                fingerprint:
                  type: string
            Inspection:
              type: object
              description: The result of inspecting one query string (Swift's default Codable keys).
              required: [statements]
              additionalProperties: true
              properties:
                statements:
                  type: array
                  items:
                    $ref: '#/components/schemas/StatementFacts'
                parseError:
                  type: object
                  description: Set when PostgreSQL's parser rejects the text.
                  required: [message, position]
                  properties:
                    message:
                      type: string
                    position:
                      type: integer
                      description: The 1-based character position it pointed at.
            RoleView:
              type: object
              required:
                - name
                - connections
                - max_duration
                - reason_required
                - approver_groups
                - approvals_needed
                - break_glass
              properties:
                name:
                  type: string
                connections:
                  type: array
                  description: Connections the role is for (any when empty).
                  items:
                    type: string
                max_duration:
                  $ref: '#/components/schemas/Duration'
                reason_required:
                  type: boolean
                approver_groups:
                  type: array
                  items:
                    type: string
                approvals_needed:
                  type: integer
                break_glass:
                  type: boolean
                  description: Whether the role has break-glass access.
            Roles:
              type: object
              required: [roles]
              properties:
                roles:
                  type: array
                  items:
                    $ref: '#/components/schemas/RoleView'
            GrantView:
              type: object
              required: [request, seconds_left]
              properties:
                request:
                  $ref: '#/components/schemas/AccessRequestView'
                seconds_left:
                  type: integer
                  minimum: 0
            Grants:
              type: object
              required: [grants]
              properties:
                grants:
                  type: array
                  items:
                    $ref: '#/components/schemas/GrantView'
        """#
}
