package backendtest

import "testing"

// RunService runs the service-level cases: behaviour that goes
// through a queues.Service and its worker (middleware, overrides, immediate
// execution, uniqueness, unknown tasks, timeouts, shutdown, cancellation of
// running attempts, stale recovery and claim loss), on the factory's backend.
func RunService(t *testing.T, f Factory) {
	t.Helper()
	checkFactory(t, f)
	groups := []group{
		{"Middleware", testSvcMiddleware},
		{"Overrides", testSvcOverrides},
		{"Uniqueness", testSvcUniqueness},
		{"UniqueRule", testSvcUniqueRule},
		{"Outcomes", testSvcOutcomes},
		{"HandlerOutcomes", testSvcHandlerOutcomes},
		{"Cancellation", testSvcCancellation},
		{"Shutdown", testSvcShutdown},
		{"Recovery", testSvcRecovery},
		{"Attempts", testSvcAttempts},
		{"Schedules", testSvcSchedules},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			g.run(t, f)
		})
	}
}
