package driver

import (
	"context"

	"github.com/queuesgo/queues/queuestype"
)

// ExactCounter is implemented by a store whose Statistics may answer with
// estimates (queuestype.Statistics.Estimated) to avoid scanning a very
// large table. ExactStatistics counts every status exactly, whatever the
// table's size and cost; queue "" means all queues. A store whose
// Statistics is always exact need not implement it.
type ExactCounter interface {
	ExactStatistics(ctx context.Context, queue string) (queuestype.Statistics, error)
}
