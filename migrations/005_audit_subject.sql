-- placeholder, replaced at merge (tern refuses a migration without SQL)
SELECT 1;
