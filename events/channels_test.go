package events

import (
	"reflect"
	"testing"
)

func TestNormalizeChannelPart(t *testing.T) {
	cases := []struct {
		in    string
		colon bool
		want  string
	}{
		{"Crème Brûlée!!", false, "creme_brulee"},
		{"", false, "unknown"},
		{"!!!", false, "unknown"},
		{"日本語", false, "unknown"},
		{"a日b", false, "ab"},
		{"default", false, "default"},
		{"My Queue", false, "my_queue"},
		{"  spaced  out  ", false, "spaced_out"},
		{"a__b", false, "a__b"},
		{"_lead_trail_", false, "lead_trail"},
		{"v1.2-beta_3", false, "v1.2-beta_3"},
		{"tenant:42/Report", true, "tenant:42_report"},
		{"tenant:42/Report", false, "tenant_42_report"},
		{"a::b", true, "a::b"},
		{"ﬁle①", false, "file1"}, // NFKD compatibility decomposition
		{"ÅNGSTRÖM", false, "angstrom"},
		{"7f1c0a52-4a5e-4b8e-9f00-0c1d2e3f4a5b", false, "7f1c0a52-4a5e-4b8e-9f00-0c1d2e3f4a5b"},
		{"host-1:42", false, "host-1_42"},
	}
	for _, c := range cases {
		if got := NormalizeChannelPart(c.in, c.colon); got != c.want {
			t.Errorf("NormalizeChannelPart(%q, %v) = %q, want %q", c.in, c.colon, got, c.want)
		}
	}
}

func TestChannelNames(t *testing.T) {
	cases := map[string]string{
		TaskChannel("", "ABC"):               "queues:task:abc:events",
		QueueChannel("queues", "Default"):    "queues:queue:default:events",
		WorkerChannel("acme", "host-1:42"):   "acme:worker:host-1_42:events",
		GlobalChannel(""):                    "queues:global:events",
		GlobalChannel("acme"):                "acme:global:events",
		CustomChannel("", "Tenant:42/Crawl"): "queues:custom:tenant:42_crawl:events",
		CustomChannel("", ""):                "queues:custom:unknown:events",
	}
	for got, want := range cases {
		if got != want {
			t.Errorf("got %q want %q", got, want)
		}
	}
}

func TestFlushFirstAndLifecycle(t *testing.T) {
	flush := []string{TypeCompleted, TypeFailed, TypeCancelled, TypeInterrupted, TypeClaimLost, TypeStaleFailed}
	for _, ty := range flush {
		if !IsFlushFirst(ty) || !IsLifecycle(ty) {
			t.Errorf("%s should be flush-first and lifecycle", ty)
		}
	}
	if IsFlushFirst(TypeStarted) || !IsLifecycle(TypeStarted) {
		t.Error("task.started: lifecycle but not flush-first")
	}
	for _, ty := range []string{TypeExpired, TypeProgress, TypeLog, TypeEvent, TypeStaleRecovery, "crawl.page"} {
		if IsFlushFirst(ty) || IsLifecycle(ty) {
			t.Errorf("%s should be neither", ty)
		}
	}
}

func TestChannels(t *testing.T) {
	const tid = "7F1C0A52-4a5e-4b8e-9f00-0c1d2e3f4a5b"
	task := "queues:task:7f1c0a52-4a5e-4b8e-9f00-0c1d2e3f4a5b:events"
	global := "queues:global:events"
	cases := []struct {
		name string
		ns   string
		ev   *Event
		o    ChannelOptions
		want []string
	}{
		{"task with queue", "", &Event{Type: TypeProgress, Scope: ScopeTask, TaskID: tid, Queue: "default"}, ChannelOptions{},
			[]string{task, "queues:queue:default:events"}},
		{"skip task channel", "", &Event{Type: TypeProgress, Scope: ScopeTask, TaskID: tid, Queue: "default"}, ChannelOptions{SkipTaskChannel: true},
			[]string{"queues:queue:default:events"}},
		{"skip both → global", "", &Event{Type: TypeProgress, Scope: ScopeTask, TaskID: tid, Queue: "default"}, ChannelOptions{SkipTaskChannel: true, SkipQueueChannel: true},
			[]string{global}},
		{"lifecycle global", "", &Event{Type: TypeCompleted, Scope: ScopeTask, TaskID: tid, Queue: "q"}, ChannelOptions{PublishGlobalLifecycle: true},
			[]string{task, "queues:queue:q:events", global}},
		{"started is lifecycle", "", &Event{Type: TypeStarted, Scope: ScopeTask, TaskID: tid}, ChannelOptions{PublishGlobalLifecycle: true},
			[]string{task, global}},
		{"expired not lifecycle", "", &Event{Type: TypeExpired, Scope: ScopeTask, TaskID: tid}, ChannelOptions{PublishGlobalLifecycle: true},
			[]string{task}},
		{"lifecycle off", "", &Event{Type: TypeCompleted, Scope: ScopeTask, TaskID: tid}, ChannelOptions{},
			[]string{task}},
		{"queue scope dedup with queue", "", &Event{Type: "q.paused", Scope: ScopeQueue, ScopeKey: "Emails", Queue: "emails"}, ChannelOptions{},
			[]string{"queues:queue:emails:events"}},
		{"queue scope key then queue", "", &Event{Type: "q.x", Scope: ScopeQueue, ScopeKey: "a", Queue: "b"}, ChannelOptions{},
			[]string{"queues:queue:a:events", "queues:queue:b:events"}},
		{"queue scope survives SkipQueueChannel", "", &Event{Type: "q.x", Scope: ScopeQueue, ScopeKey: "a", Queue: "b"}, ChannelOptions{SkipQueueChannel: true},
			[]string{"queues:queue:a:events"}},
		{"queue scope without key", "", &Event{Type: "q.x", Scope: ScopeQueue}, ChannelOptions{},
			[]string{global}},
		{"worker scope", "acme", &Event{Type: TypeStaleRecovery, Scope: ScopeWorker, ScopeKey: "w-1", WorkerID: "w-2"}, ChannelOptions{},
			[]string{"acme:worker:w-1:events"}},
		{"worker scope falls back to workerId", "", &Event{Type: TypeStaleRecovery, Scope: ScopeWorker, WorkerID: "W-2"}, ChannelOptions{},
			[]string{"queues:worker:w-2:events"}},
		{"global scope + lifecycle dedup", "", &Event{Type: TypeFailed, Scope: ScopeGlobal}, ChannelOptions{PublishGlobalLifecycle: true},
			[]string{global}},
		{"custom scope", "", &Event{Type: "crawl.page_discovered", Scope: ScopeCustom, ScopeKey: "Crawl:Site/1", TaskID: tid}, ChannelOptions{},
			[]string{task, "queues:custom:crawl:site_1:events"}},
		{"extras appended and deduped", "", &Event{Type: TypeLog, Scope: ScopeTask, TaskID: tid},
			ChannelOptions{Extra: []string{"x:custom", task, "", "x:custom", "queues:global:events"}},
			[]string{task, "x:custom", global}},
		{"task scope without ids → global", "", &Event{Type: TypeLog, Scope: ScopeTask}, ChannelOptions{},
			[]string{global}},
		{"nil event", "ns", nil, ChannelOptions{}, []string{"ns:global:events"}},
	}
	for _, c := range cases {
		if got := Channels(c.ns, c.ev, c.o); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %q want %q", c.name, got, c.want)
		}
	}
}
