package main

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/strata-mq/strata/broker"
)

// byteSize is a size flag: a number of bytes with an optional unit
// (KiB, MiB, GiB, TiB, or KB, MB, GB, TB as powers of 1000).
type byteSize int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1},
}

func parseByteSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	for _, u := range sizeUnits {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
			if err != nil || n < 0 {
				return 0, fmt.Errorf("size %q: want a number with an optional unit such as 64MiB", s)
			}
			return int64(n * float64(u.mult)), nil
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: want a number with an optional unit such as 64MiB", s)
	}
	return n, nil
}

func (b *byteSize) UnmarshalText(t []byte) error {
	n, err := parseByteSize(string(t))
	*b = byteSize(n)
	return err
}

func (b *byteSize) Set(s string) error { return b.UnmarshalText([]byte(s)) }

func (b byteSize) String() string {
	for _, u := range sizeUnits[:4] {
		if b >= byteSize(u.mult) && int64(b)%u.mult == 0 {
			return fmt.Sprintf("%d%s", int64(b)/u.mult, u.suffix)
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// parseHotRetention parses --hot-retention: `0`, a size (`10GiB`), a
// share of the data disk (`80%`) or an age (`24h`).
func parseHotRetention(s string) (broker.HotRetention, error) {
	s = strings.TrimSpace(s)
	if s == "0" {
		return broker.HotRetention{}, nil
	}
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || v <= 0 || v > 100 {
			return broker.HotRetention{}, fmt.Errorf("%q: a percentage must be in (0, 100]", s)
		}
		return broker.HotRetention{Percent: v}, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return broker.HotRetention{Age: d}, nil
	}
	n, err := parseByteSize(s)
	if err != nil {
		return broker.HotRetention{}, fmt.Errorf("%q: want 0, a size (10GiB), a percentage (80%%) or a duration (24h)", s)
	}
	return broker.HotRetention{Bytes: n}, nil
}

// parseConfig fills cfg from defaults (already in cfg), then STRATA_*
// environment variables, then the flags that define registers on fs:
// flags win over the environment, the environment over defaults.
func parseConfig(cfg any, fs *flag.FlagSet, args []string, define func(*flag.FlagSet)) error {
	if err := env.ParseWithOptions(cfg, env.Options{Prefix: "STRATA_"}); err != nil {
		return fmt.Errorf("environment: %w", err)
	}
	define(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return nil
}

// errUsage marks errors whose message is the usage text.
var errUsage = errors.New("usage")
