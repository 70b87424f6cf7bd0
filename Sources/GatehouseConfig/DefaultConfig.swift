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
        """
}
