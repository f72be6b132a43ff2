// Package queuestype holds the values both sides of the store contract
// share: the task record and its status, the generation fence, statistics,
// identity reservations, the errors a store returns, and the limits every
// store applies alike. It imports nothing from the module, so an
// application (through the aliases in package queues) and a store
// implementation (through package driver) speak of the same types.
package queuestype
