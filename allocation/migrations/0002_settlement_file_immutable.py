from django.db import migrations

# A settlement file, once written, is what the custodian was told: the database refuses to change
# or delete it (TRUNCATE, which the test suite uses to reset, is not affected).
FORWARD = """
CREATE OR REPLACE FUNCTION allocation_settlementfile_immutable() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'settlement files are immutable; generate a new version instead';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER allocation_settlementfile_immutable
    BEFORE UPDATE OR DELETE ON allocation_settlementfile
    FOR EACH ROW EXECUTE FUNCTION allocation_settlementfile_immutable();
"""
REVERSE = """
DROP TRIGGER IF EXISTS allocation_settlementfile_immutable ON allocation_settlementfile;
DROP FUNCTION IF EXISTS allocation_settlementfile_immutable();
"""


class Migration(migrations.Migration):
    dependencies = [("allocation", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, REVERSE)]
