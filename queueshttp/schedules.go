package queueshttp

import (
	"errors"
	"net/http"

	"github.com/queuesgo/queues"
	"github.com/queuesgo/queues/queuestype"
)

// ScheduleActionResponse is the body of POST /api/schedules/{name}/pause,
// /resume and /trigger: the schedule's state after the action. For a
// trigger, TaskID is the occurrence due now.
type ScheduleActionResponse struct {
	Schedule queues.ScheduleInfo `json:"schedule"`
	TaskID   string              `json:"task_id,omitempty"`
}

// schedules answers GET /api/schedules with a JSON array of the schedules
// the service's registry declares (queues.ScheduleInfo), ordered by name.
func (a *api) schedules(w http.ResponseWriter, r *http.Request) {
	infos, err := a.svc.Schedules(r.Context())
	if errors.Is(err, queues.ErrUnsupported) {
		writeError(w, http.StatusNotImplemented, "unsupported", "this queue backend cannot list tasks")
		return
	}
	if err != nil {
		a.internal(w, r, err)
		return
	}
	if infos == nil {
		infos = []queues.ScheduleInfo{}
	}
	writeJSON(w, http.StatusOK, infos)
}

// scheduleAction serves the pause, resume and trigger routes: 404
// schedule_not_found for a name the registry does not declare, 501 when
// the store cannot pause, 409 schedule_running when a trigger finds the
// occurrence running.
func (a *api) scheduleAction(action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		var taskID string
		var err error
		switch action {
		case "pause":
			err = a.svc.PauseSchedule(r.Context(), name)
		case "resume":
			err = a.svc.ResumeSchedule(r.Context(), name)
		default:
			var rec *queues.Record
			rec, err = a.svc.TriggerSchedule(r.Context(), name)
			if rec != nil {
				taskID = rec.ID.String()
			}
		}
		switch {
		case errors.Is(err, queuestype.ErrScheduleNotFound):
			writeError(w, http.StatusNotFound, "schedule_not_found", "no schedule named "+quoteName(name)+" is declared")
			return
		case errors.Is(err, queuestype.ErrSchedulePauseUnsupported):
			writeError(w, http.StatusNotImplemented, "unsupported", "this queue backend cannot pause schedules")
			return
		case errors.Is(err, queuestype.ErrScheduleRunning):
			writeError(w, http.StatusConflict, "schedule_running", "the schedule's occurrence "+taskID+" is running")
			return
		case err != nil:
			a.internal(w, r, err)
			return
		}
		infos, err := a.svc.Schedules(r.Context())
		if err != nil {
			a.internal(w, r, err)
			return
		}
		resp := ScheduleActionResponse{TaskID: taskID}
		for _, info := range infos {
			if info.Name == name {
				resp.Schedule = info
			}
		}
		writeJSON(w, http.StatusOK, resp)
	}
}

// quoteName quotes a user-supplied name for a message, bounded.
func quoteName(s string) string {
	const max = 200
	if len(s) > max {
		s = s[:max] + "…"
	}
	return `"` + s + `"`
}
