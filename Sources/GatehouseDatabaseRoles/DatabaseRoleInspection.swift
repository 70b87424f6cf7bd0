import GatehouseConfig
import GatehouseCore
import Logging
import NIOSSL
import PostgresNIO

/// Reads, as the gateway's own login, what `gatehouse connections check` judges: the server's version,
/// what the login may do, each role the connection hands out and what it allows, and the people's roles.
/// It only reads: nothing in the database changes.
public enum DatabaseRoleInspection {
    public static func read(
        _ connection: Connection, tlsContext: NIOSSLContext?, logger: Logger
    ) async throws -> DatabaseRoleFacts {
        let postgres = try await DatabaseRoleService.connect(
            connection, tlsContext: tlsContext, applicationName: "gatehouse-check", purpose: "to check the connection",
            logger: logger)
        do {
            let facts = try await read(connection, on: postgres, logger: logger)
            try? await postgres.close()
            return facts
        } catch {
            try? await postgres.close()
            throw DatabaseRoleError("reading the roles failed: \(DatabaseRoleService.describe(error))")
        }
    }

    private static func read(
        _ connection: Connection, on postgres: PostgresConnection, logger: Logger
    ) async throws -> DatabaseRoleFacts {
        let login = try await postgres.query(
            """
            SELECT current_setting('server_version_num')::int, current_setting('server_version'), rolsuper, rolcreaterole,
              pg_has_role(current_user, 'pg_signal_backend', 'USAGE')
            FROM pg_roles WHERE rolname = current_user
            """,
            logger: logger
        ).collect()
        guard let row = login.first else { throw DatabaseRoleError("the login \(connection.user) is not in pg_roles") }
        let (version, versionText, superuser, createRole, signal) = try row.decode((Int, String, Bool, Bool, Bool).self)
        var facts = DatabaseRoleFacts(
            serverVersion: version, serverVersionText: versionText, loginIsSuperuser: superuser,
            loginCanCreateRoles: createRole, handedOut: [:])
        facts.loginCanSignal = signal
        guard let roles = connection.databaseRoles else { return facts }

        let names = roles.handedOut.sorted()
        for name in names { facts.handedOut[name] = .init(exists: false) }
        let described = try await postgres.query(
            """
            SELECT r.rolname::text,
              array_remove(ARRAY[CASE WHEN r.rolsuper THEN 'SUPERUSER' END, CASE WHEN r.rolreplication THEN 'REPLICATION' END,
                CASE WHEN r.rolbypassrls THEN 'BYPASSRLS' END], NULL),
              EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles l ON l.oid = m.member
                WHERE m.roleid = r.oid AND l.rolname = current_user AND m.admin_option),
              ARRAY(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid)
            FROM pg_roles r WHERE r.rolname = ANY(\(names))
            """,
            logger: logger
        ).collect()
        for row in described {
            let (name, attributes, adminOption, memberOf) = try row.decode((String, [String], Bool, [String]).self)
            facts.handedOut[name] = .init(
                exists: true, privilegedAttributes: attributes, gatewayHasAdminOption: adminOption, privileges: [],
                memberOf: memberOf.sorted())
        }
        // What each allows, from the access lists of this database's objects.
        let privileges = try await postgres.query(
            """
            WITH objects AS (
              SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence'
                WHEN 'f' THEN 'foreign table' ELSE 'table' END AS kind, c.oid::regclass::text AS name, c.relacl AS acl
              FROM pg_class c WHERE c.relacl IS NOT NULL AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
              UNION ALL
              SELECT 'column', c.oid::regclass::text || '.' || quote_ident(a.attname), a.attacl
              FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid WHERE a.attacl IS NOT NULL AND NOT a.attisdropped
              UNION ALL
              SELECT 'schema', quote_ident(n.nspname), n.nspacl FROM pg_namespace n WHERE n.nspacl IS NOT NULL
              UNION ALL
              SELECT CASE p.prokind WHEN 'p' THEN 'procedure' ELSE 'function' END, p.oid::regprocedure::text, p.proacl
              FROM pg_proc p WHERE p.proacl IS NOT NULL
              UNION ALL
              SELECT 'database', quote_ident(d.datname), d.datacl FROM pg_database d
              WHERE d.datacl IS NOT NULL AND d.datname = current_database()
            )
            SELECT r.rolname::text, string_agg(DISTINCT e.privilege_type, ', ') || ' on ' || o.kind || ' ' || o.name,
              bool_or(e.is_grantable)
            FROM objects o CROSS JOIN LATERAL aclexplode(o.acl) e JOIN pg_roles r ON r.oid = e.grantee
            WHERE r.rolname = ANY(\(names))
            GROUP BY r.rolname, o.kind, o.name ORDER BY 1, 2
            """,
            logger: logger
        ).collect()
        for row in privileges {
            let (name, line, grantable) = try row.decode((String, String, Bool).self)
            facts.handedOut[name]?.privileges.append(line)
            if grantable, facts.handedOut[name]?.grantOptions.count ?? 0 < 5 {
                facts.handedOut[name]?.grantOptions.append(line)
            }
        }
        // What each owns in this database (a few of each, enough to say so).
        let owned = try await postgres.query(
            """
            SELECT r.rolname::text, o.name FROM pg_roles r CROSS JOIN LATERAL (
              SELECT c.oid::regclass::text AS name FROM pg_class c WHERE c.relowner = r.oid AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
              UNION ALL SELECT quote_ident(n.nspname) FROM pg_namespace n WHERE n.nspowner = r.oid
              UNION ALL SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.proowner = r.oid
              LIMIT 5) o
            WHERE r.rolname = ANY(\(names))
            """,
            logger: logger
        ).collect()
        for row in owned {
            let (name, object) = try row.decode((String, String).self)
            facts.handedOut[name]?.owns.append(object)
        }
        // The people's roles: those the gateway made (by its comment), and strangers of the same form.
        let people = try await postgres.query(
            """
            SELECT r.rolname::text, COALESCE(shobj_description(r.oid, 'pg_authid'), ''),
              ARRAY(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid)
            FROM pg_roles r
            """,
            logger: logger
        ).collect()
        let marker = RoleSQL.marker(connection: connection.name)
        for row in people {
            let (name, comment, memberOf) = try row.decode((String, String, [String]).self)
            guard roles.user(of: name) != nil, !roles.handedOut.contains(name), name != connection.user else { continue }
            if comment == marker { facts.managed[name] = memberOf.sorted() } else { facts.strangers.append(name) }
        }
        return facts
    }
}
