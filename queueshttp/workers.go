package queueshttp

import (
	"errors"
	"net/http"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/driver"
)

// workers answers GET /api/workers with a JSON array of the live workers
// (driver.WorkerInfo), ordered by ID, or 501 when the store keeps no
// registry of workers.
func (a *api) workers(w http.ResponseWriter, r *http.Request) {
	ws, err := a.svc.Workers(r.Context())
	if errors.Is(err, queues.ErrUnsupported) {
		writeError(w, http.StatusNotImplemented, "unsupported", "this queue backend keeps no registry of workers")
		return
	}
	if err != nil {
		a.internal(w, r, err)
		return
	}
	if ws == nil {
		ws = []driver.WorkerInfo{}
	}
	writeJSON(w, http.StatusOK, ws)
}
