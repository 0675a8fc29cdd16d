from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from psycopg import sql

# What the application may do: everything it needs on every table, but on the audit table
# only read and append. Run by the schema owner after every migrate (the launcher does).
GRANTS = """
GRANT USAGE ON SCHEMA public TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role};
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {role};
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role};
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {role};
REVOKE UPDATE, DELETE, TRUNCATE ON audit_auditevent FROM {role};
"""


class Command(BaseCommand):
    help = (
        "Create (if needed) the database role the application runs as, with every right it "
        "needs except UPDATE, DELETE and TRUNCATE on the audit table."
    )

    def add_arguments(self, parser):
        parser.add_argument("--role", default="oms_app")
        parser.add_argument("--password", default="")

    def handle(self, *args, role, password, **options):
        if not role.replace("_", "").isalnum():
            raise CommandError("role must be letters, digits and underscores")
        ident = sql.Identifier(role)
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
            if cursor.fetchone() is None:
                cursor.execute(
                    sql.SQL("CREATE ROLE {} LOGIN").format(ident).as_string(cursor.connection)
                )
            if password:
                cursor.execute(
                    sql.SQL("ALTER ROLE {} PASSWORD {}")
                    .format(ident, sql.Literal(password))
                    .as_string(cursor.connection)
                )
            for statement in GRANTS.strip().splitlines():
                cursor.execute(sql.SQL(statement).format(role=ident).as_string(cursor.connection))
        self.stdout.write(f"role {role}: granted; UPDATE/DELETE/TRUNCATE on audit revoked")
