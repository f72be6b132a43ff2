// Package storekit holds the helpers that stores (packages implementing
// driver.Backend) share, so that every store words its errors, applies
// defaults and resolves identity keys the same way: error constructors,
// limit defaults, claim and stale orders, option validation, and the
// preparation and key folding of Enqueue items.
//
// The stores in backend/ use it; a store written outside this module may
// use it too. Nothing here talks to a database: each helper is plain Go
// over the driver and queuestype types, and a store passes in what it
// read from its own storage.
package storekit
