package sqlite

func DbgStats() string { return dbgStats() }

func DbgReset() { dbgReset() }
