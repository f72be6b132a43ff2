package redis

import (
	"os"
	"testing"

	"github.com/queuesgo/queues/internal/testservice"
)

// TestMain prints one line per live server the tests needed and did not find.
func TestMain(m *testing.M) { os.Exit(testservice.Main(m)) }
