package queueshttp

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/queuesgo/queues/internal/schedhealth"
)

// schedulerHealth answers GET /api/scheduler-health?minutes=N (default 5)
// with {"healthy", "canary", "last_completed_at", "minutes", "since"}: 200
// when the scheduler canary completed within the last N minutes, 503 with
// the same body when it did not (so an uptime probe alerts on the status
// alone), 404 not_registered when this service does not register the
// canary, 400 invalid_minutes for N outside 1..schedhealth.MaxMinutes.
func (a *api) schedulerHealth(w http.ResponseWriter, r *http.Request) {
	minutes := schedhealth.DefaultMinutes
	if v := r.URL.Query().Get("minutes"); v != "" {
		n, err := strconv.Atoi(v)
		if err == nil {
			err = schedhealth.CheckMinutes(n)
		}
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_minutes",
				fmt.Sprintf("minutes must be an integer in 1..%d", schedhealth.MaxMinutes))
			return
		}
		minutes = n
	}
	rep, err := schedhealth.Check(r.Context(), a.svc, minutes, time.Now())
	if errors.Is(err, schedhealth.ErrNotRegistered) {
		writeError(w, http.StatusNotFound, "not_registered", err.Error())
		return
	}
	if err != nil {
		a.internal(w, r, err)
		return
	}
	status := http.StatusOK
	if !rep.Healthy {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, rep)
}
