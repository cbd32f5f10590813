package migrations

// For tests that need to stop at an older schema.
var (
	Files        = files
	VersionTable = versionTable
)
