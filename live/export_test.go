package live

// Written is written, for the tests.
var Written = written
