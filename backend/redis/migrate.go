package redis

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/queuesgo/queues/driver"
	"github.com/queuesgo/queues/queuestype"
)

// The versions Migrate reports, oldest first.
const (
	// migrationLayout is the key layout itself (layout "1").
	migrationLayout = "0001_redis_key_layout"
	// migrationPolicy moves each record's task policy and interruption
	// counter out of its metadata into fields of their own (layout "2").
	migrationPolicy = "0002_redis_typed_policy"
	// migrationDispatch gives each record reserved for external dispatch
	// (its execution_ref a reservation marker) a dispatch_until field
	// holding the marker's deadline (layout "3").
	migrationDispatch = "0003_redis_dispatch_until"
)

// layoutMigrating marks a prefix whose records are being moved from layout
// 1 to 2, and layoutMigratingDispatch one being moved from 2 to 3: builds
// of an earlier layout refuse them, as they refuse layout 3, and this build
// finishes the migration when it meets them.
const (
	layoutMigrating         = "1>2"
	layoutMigratingDispatch = "2>3"
)

// migrateScanCount is the SCAN COUNT of one migration step, and
// migrateApplyArgs bounds the arguments of one apply call.
const (
	migrateScanCount = 500
	migrateApplyArgs = 8192
)

var _ driver.Migrator = (*Backend)(nil)

// Migrate brings the prefix to the current key layout and reports the
// versions: "0001_redis_key_layout" (the key layout, written to
// <p>:version), "0002_redis_typed_policy" and "0003_redis_dispatch_until".
// The second moves, in every
// record of a layout-1 prefix, the policy keys earlier builds kept in the
// metadata (timeout, retry_backoff, requeue_on_stale, requeue_on_shutdown,
// log_level, log_success, description, _correlation_id, unique_by,
// unique_version, unique_until) into the record's policy field, as
// queuestype.PolicyFromMetadata reads them, and metadata.interruptions
// into its interruptions field, and removes those keys from the metadata
// (and from the metadata overlay fields heartbeats and interruptions
// wrote). A record that already has a policy field is left alone, so the
// step is idempotent: a migration cut short is finished by the next
// Migrate or Open. Each record is rewritten by a script that checks it is
// still as read, so a write landing meanwhile is re-read and migrated
// again. The third gives every non-terminal record whose execution_ref is
// a reservation marker "__queues_dispatching__:<unix seconds>:<uuid>" (how
// earlier layouts recognised a record reserved for external dispatch) a
// dispatch_until field holding that deadline, which is how this layout
// recognises it; a record that already has one is left alone, so this step
// is idempotent too. An empty prefix gets the current layout at once.
// DryRun reports the pending versions without writing.
//
// Open runs the same migration, so an earlier prefix is migrated by the
// first process of this build that opens it. While it runs the version
// reads "1>2" or "2>3", which builds of earlier layouts refuse to open;
// processes of such builds that are already running keep writing the
// earlier form (a reservation without dispatch_until, which this build
// would claim), so stop them first.
func (b *Backend) Migrate(ctx context.Context, opts driver.MigrateOptions) (driver.MigrateReport, error) {
	return b.migrate(ctx, opts.DryRun)
}

// migrate reads the layout version and, unless dryRun, brings the prefix
// to LayoutVersion.
func (b *Backend) migrate(ctx context.Context, dryRun bool) (driver.MigrateReport, error) {
	all := []string{migrationLayout, migrationPolicy, migrationDispatch}
	before, err := b.version(ctx, "read")
	if err != nil {
		return driver.MigrateReport{}, err
	}
	switch before {
	case LayoutVersion:
		return driver.MigrateReport{Applied: all}, nil
	case "":
		if dryRun {
			return driver.MigrateReport{Pending: all}, nil
		}
		// An empty prefix: nothing to move. Another process may write
		// the version first; then follow what it wrote.
		was, err := b.version(ctx, "init", LayoutVersion)
		if err != nil {
			return driver.MigrateReport{}, err
		}
		if was != "" {
			return b.migrate(ctx, dryRun)
		}
		return driver.MigrateReport{Applied: all, AppliedNow: all}, nil
	case "1", layoutMigrating, "2", layoutMigratingDispatch:
		// done is how many versions the prefix had fully applied.
		done := 2
		if before == "1" || before == layoutMigrating {
			done = 1
		}
		if dryRun {
			return driver.MigrateReport{Applied: all[:done], Pending: all[done:]}, nil
		}
		if done == 1 {
			if before == "1" {
				if _, err := b.version(ctx, "cas", "1", layoutMigrating); err != nil {
					return driver.MigrateReport{}, err
				}
			}
			if err := b.migratePolicies(ctx); err != nil {
				return driver.MigrateReport{}, fmt.Errorf("redis: migrate %s: %w", migrationPolicy, err)
			}
			if _, err := b.version(ctx, "cas", layoutMigrating, layoutMigratingDispatch); err != nil {
				return driver.MigrateReport{}, err
			}
		} else if before == "2" {
			if _, err := b.version(ctx, "cas", "2", layoutMigratingDispatch); err != nil {
				return driver.MigrateReport{}, err
			}
		}
		if err := b.migrateDispatch(ctx); err != nil {
			return driver.MigrateReport{}, fmt.Errorf("redis: migrate %s: %w", migrationDispatch, err)
		}
		if _, err := b.version(ctx, "cas", layoutMigratingDispatch, LayoutVersion); err != nil {
			return driver.MigrateReport{}, err
		}
		return driver.MigrateReport{Applied: all, AppliedNow: all[done:]}, nil
	default:
		return driver.MigrateReport{}, fmt.Errorf("redis: prefix %s holds key layout version %q; this build knows %q",
			b.prefix, before, LayoutVersion)
	}
}

// version runs the version script (mode "read", "init" or "cas") and
// returns the version before the call.
func (b *Backend) version(ctx context.Context, mode string, args ...any) (string, error) {
	res, err := b.run(ctx, scriptVersion, append([]any{mode}, args...)...).StringSlice()
	if err != nil {
		return "", fmt.Errorf("redis: layout version: %w", err)
	}
	if len(res) != 2 {
		return "", fmt.Errorf("redis: layout version reply has %d parts", len(res))
	}
	return res[0], nil
}

// globEscape escapes the characters SCAN MATCH patterns treat specially.
func globEscape(s string) string {
	var sb strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			sb.WriteByte('\\')
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

// migrateDispatch walks every record key of the prefix (SCAN, inside a
// script, as migratePolicies does) and gives each record reserved by a
// marker its dispatch_until; each step is one atomic script call.
func (b *Backend) migrateDispatch(ctx context.Context) error {
	pattern := globEscape(b.prefix) + ":task:*"
	cursor := "0"
	for {
		v, err := b.run(ctx, scriptMigrate, "dispatch", cursor, pattern, migrateScanCount).Slice()
		if err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		if len(v) != 2 {
			return fmt.Errorf("scan reply has %d parts", len(v))
		}
		cursor, _ = v[0].(string)
		if cursor == "0" || cursor == "" {
			return nil
		}
	}
}

// migratePolicies walks every record key of the prefix (SCAN, inside a
// script so it runs on the node that holds the prefix on a cluster) and
// moves each record's legacy policy keys into its own fields.
func (b *Backend) migratePolicies(ctx context.Context) error {
	pattern := globEscape(b.prefix) + ":task:*"
	cursor := "0"
	for {
		v, err := b.run(ctx, scriptMigrate, "scan", cursor, pattern, migrateScanCount).Slice()
		if err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		if len(v) != 2 {
			return fmt.Errorf("scan reply has %d parts", len(v))
		}
		cursor, _ = v[0].(string)
		rows, _ := v[1].([]any)
		recs := make(map[string]map[string]string, len(rows))
		for _, row := range rows {
			a, _ := row.([]any)
			if len(a) != 2 {
				return fmt.Errorf("scan row %v", row)
			}
			id, _ := a[0].(string)
			flat, _ := a[1].([]any)
			m := make(map[string]string, len(flat)/2)
			for i := 0; i+1 < len(flat); i += 2 {
				k, _ := flat[i].(string)
				s, _ := flat[i+1].(string)
				m[k] = s
			}
			recs[id] = m
		}
		if err := b.migrateRecords(ctx, recs); err != nil {
			return err
		}
		if cursor == "0" || cursor == "" {
			return nil
		}
	}
}

// migrateRecords migrates the records read (ID → fields), re-reading and
// retrying those that changed before the write could apply.
func (b *Backend) migrateRecords(ctx context.Context, recs map[string]map[string]string) error {
	for round := 0; len(recs) > 0; round++ {
		if round == 10 {
			return fmt.Errorf("%d records kept changing while being migrated", len(recs))
		}
		var plans []*legacyPlan
		for id, fields := range recs {
			if p := planLegacy(id, fields); p != nil {
				plans = append(plans, p)
			}
		}
		// Stable order: the records of one step are written in ID order.
		slices.SortFunc(plans, func(x, y *legacyPlan) int { return strings.Compare(x.id, y.id) })
		changed := map[string]bool{}
		for start := 0; start < len(plans); {
			args := []any{"apply", 0}
			n := 0
			for start+n < len(plans) && (n == 0 || len(args)+plans[start+n].weight() <= migrateApplyArgs) {
				args = plans[start+n].appendArgs(args)
				n++
			}
			args[1] = n
			res, err := b.run(ctx, scriptMigrate, args...).StringSlice()
			if err != nil {
				return fmt.Errorf("apply: %w", err)
			}
			if len(res) != n {
				return fmt.Errorf("apply returned %d replies for %d records", len(res), n)
			}
			for i, code := range res {
				if code == "C" {
					changed[plans[start+i].id] = true
				}
			}
			start += n
		}
		recs = make(map[string]map[string]string, len(changed))
		for id := range changed {
			m, err := b.client.HGetAll(ctx, b.prefix+":task:"+id).Result()
			if err != nil {
				return fmt.Errorf("re-read %s: %w", id, err)
			}
			if len(m) > 0 {
				recs[id] = m
			}
		}
	}
	return nil
}

// legacyPlan is the rewrite of one layout-1 record.
type legacyPlan struct {
	id       string
	meta     string      // the metadata field as read ("" = absent)
	overlays [][2]string // the overlay fields as read
	newMeta  string      // "" = no metadata left
	policy   string
	intr     string
	dels     []string
}

func (p *legacyPlan) weight() int { return 8 + 2*len(p.overlays) + len(p.dels) }

func (p *legacyPlan) appendArgs(args []any) []any {
	args = append(args, p.id, p.meta, len(p.overlays))
	for _, o := range p.overlays {
		args = append(args, o[0], o[1])
	}
	args = append(args, p.newMeta, p.policy, p.intr, len(p.dels))
	for _, d := range p.dels {
		args = append(args, d)
	}
	return args
}

// planLegacy decides the rewrite of one record read as fields, or returns
// nil when the record needs none: it already has a policy field, holds no
// legacy key, or its metadata cannot be read (every reader fails on it as
// well, so it is left as it is).
func planLegacy(id string, fields map[string]string) *legacyPlan {
	if _, ok := fields["policy"]; ok {
		return nil
	}
	p := &legacyPlan{id: id, meta: fields["metadata"]}
	// merged is the metadata as a reader sees it (overlays win), with JSON
	// numbers as float64, which PolicyFromMetadata expects; base keeps the
	// metadata field's numbers as written, for re-encoding.
	merged := map[string]any{}
	base := map[string]any{}
	if p.meta != "" {
		if err := json.Unmarshal([]byte(p.meta), &merged); err != nil {
			return nil
		}
		dec := json.NewDecoder(bytes.NewReader([]byte(p.meta)))
		dec.UseNumber()
		if err := dec.Decode(&base); err != nil {
			return nil
		}
	}
	for k, v := range fields {
		mk, ok := strings.CutPrefix(k, "m:")
		if !ok {
			continue
		}
		p.overlays = append(p.overlays, [2]string{k, v})
		var x any
		if json.Unmarshal([]byte(v), &x) != nil {
			x = v
		}
		merged[mk] = x
	}
	legacy := false
	for _, k := range queuestype.LegacyMetadataKeys {
		if _, ok := merged[k]; ok {
			legacy = true
			break
		}
	}
	if !legacy {
		return nil
	}
	p.policy = encodePolicy(queuestype.PolicyFromMetadata(merged))
	if f, ok := merged[queuestype.MetaInterruptions].(float64); ok && int(f) != 0 {
		p.intr = strconv.Itoa(int(f))
	}
	kept := 0
	for _, o := range p.overlays {
		if slices.Contains(queuestype.LegacyMetadataKeys, o[0][2:]) {
			p.dels = append(p.dels, o[0])
		} else {
			kept++
		}
	}
	if kept == 0 {
		if _, ok := fields["mo"]; ok {
			p.dels = append(p.dels, "mo")
		}
	}
	for _, k := range queuestype.LegacyMetadataKeys {
		delete(base, k)
	}
	if len(base) > 0 {
		raw, err := json.Marshal(base)
		if err != nil {
			return nil
		}
		p.newMeta = string(raw)
	}
	return p
}
