/// The configuration `gatehouse serve` runs when no file is given: a demo guarding a throwaway local
/// PostgreSQL (the one `scripts/run` starts), with one demo user.
public enum DefaultConfig {
    public static let name = "<embedded defaults>"

    public static let yaml = """
        # Gatehouse embedded defaults. Every ${VAR:-default} can be set from the environment.
        listen:
          postgres: ${GATEHOUSE_PG_LISTEN:-127.0.0.1:6432}
          http: ${GATEHOUSE_HTTP_LISTEN:-127.0.0.1:7070}
        data_dir: ${GATEHOUSE_DATA_DIR:-.gatehouse}
        groups: [developer, dba]
        users:
          - name: demo
            groups: [developer]
        connections:
          - name: demo
            host: ${GATEHOUSE_DEMO_PG_HOST:-127.0.0.1}
            port: ${GATEHOUSE_DEMO_PG_PORT:-5432}
            database: ${GATEHOUSE_DEMO_PG_DATABASE:-app}
            user: ${GATEHOUSE_DEMO_PG_USER:-gh_scram}
            password_env: GATEHOUSE_DEMO_PG_PASSWORD
        # The demo's story: demo reads anything; writes to the `safe` table pass; other writes wait
        # for demo's second factor (gatehouse mfa enroll, then gatehouse verify ID); DROP and
        # TRUNCATE need the dba role, which demo may request and the administrator approves.
        # examples/starter-policy.yaml is the production starter pack these rules come from.
        roles:
          - name: dba
            requesters: [developer]
            max_duration: 1h
            reason: {required: true}
            approvers: {groups: [admins]}
        policy:
          default: allow            # when no rule matches a statement the parser understood
          unclassified: deny        # unparsable text, unknown statement types, DO blocks, dynamic SQL
          rules:
            - name: no-drop-or-truncate
              description: Dropping or truncating needs an elevated grant.
              match: {kinds: [drop, truncate], elevated: false}
              action: deny
              message: DROP and TRUNCATE need an elevated grant
              hint: 'request the dba role: gatehouse request dba --reason "why" (an administrator approves it)'

            - name: no-whereless-writes
              description: UPDATE or DELETE of every row is almost always a mistake.
              match: {no_where: true}
              action: deny
              message: UPDATE and DELETE need a WHERE clause
              hint: add a WHERE clause; to change every row on purpose, write WHERE true

            - name: no-dangerous-functions
              match:
                functions: [pg_terminate_backend, pg_cancel_backend, pg_read_*file*, pg_ls_*, pg_stat_file,
                            lo_*, lowrite, pg_reload_conf, pg_rotate_logfile*, set_config, setval, pg_promote,
                            dblink*]
              action: deny
              message: this function can affect the server or other sessions

            - name: no-copy-program
              match: {copy_program: true}
              action: deny
              message: COPY ... PROGRAM runs shell commands on the database server

            - name: no-privilege-changes
              match: {kinds: [grant, revoke, set_role], elevated: false}
              action: deny
              message: privileges and roles are changed by administrators only
              hint: 'request the dba role: gatehouse request dba --reason "why"'

            - name: writes-outside-safe-need-step-up
              description: Writes to any table but `safe` wait for a fresh second factor.
              match: {writes: true, not_tables_written: [safe], elevated: false}
              action: step_up
              step_up: {method: totp, max_age: 10m}
              message: writes outside the safe table need a fresh second factor
        """
}
