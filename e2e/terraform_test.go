package e2e

// Issue 9: Terraform. The on-prem example (terraform/examples/onprem-minio)
// renders each host's environment file and systemd unit; here they run real
// Strata processes against a real MinIO, the way systemd would start them.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/strata-mq/strata/internal/miniotest"
)

// tfHost is one host of the example's "hosts" output.
type tfHost struct {
	Role                string `json:"role"`
	UnitName            string `json:"unit_name"`
	EnvironmentFilePath string `json:"environment_file_path"`
	EnvironmentFile     string `json:"environment_file"`
	SystemdUnit         string `json:"systemd_unit"`
}

// TestTerraformOnPremEnvFile: `terraform apply` of the on-prem example
// (two hosts on loopback addresses: a name server and a broker, MinIO as
// the cold tier, small segments sealed after a second) renders the hosts'
// files; each node starts as its unit says (ExecStart, with the variables
// of its EnvironmentFile= lines, the operator's credentials file among
// them) and nothing else. A message produced is consumed back, sealed
// segments land in the MinIO bucket, and a fresh consumer reads everything
// back from there.
func TestTerraformOnPremEnvFile(t *testing.T) {
	tfBin, err := exec.LookPath("terraform")
	if err != nil {
		t.Skip("SKIP: no terraform binary on PATH: this test renders terraform/examples/onprem-minio with Terraform 1.9 or newer")
	}
	if runtime.GOOS != "linux" {
		t.Skip("SKIP: the two hosts of this test are 127.0.0.1 and 127.0.0.2, which only Linux routes without setup")
	}
	t0 := time.Now()
	isolateEnv(t)
	srv := miniotest.Start(t)
	bucket := srv.NewBucket(t)
	ports, err := freePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	port := func(i int) int {
		_, p, _ := net.SplitHostPort(ports[i])
		n, _ := strconv.Atoi(p)
		return n
	}
	nsPort, brokerPort, httpPort := port(0), port(1), port(2)
	const nsHost, brokerHost, prefix = "127.0.0.1", "127.0.0.2", "tf-e2e"
	bin, err := filepath.Abs(strataBin)
	if err != nil {
		t.Fatal(err)
	}

	// What an operator fills in (terraform.tfvars), with the test's paths.
	dir := t.TempDir()
	credentials := filepath.Join(dir, "credentials.env")
	dataDir := filepath.Join(dir, "data")
	vars := map[string]any{
		"hosts":                map[string]string{nsHost: "namesrv", brokerHost: "broker"},
		"minio_endpoint":       srv.Endpoint,
		"minio_bucket":         bucket,
		"minio_prefix":         prefix,
		"minio_secure":         false,
		"credentials_env_file": credentials,
		"namesrv_port":         nsPort,
		"broker_port":          brokerPort,
		"http_port":            httpPort,
		"http_on_host_address": true,
		"data_dir":             dataDir,
		"config_dir":           filepath.Join(dir, "etc"),
		"binary_path":          bin,
		"segment_size":         "1MiB",
		"segment_max_age":      "1s",
		"hot_retention":        "0",
	}
	start := time.Now()
	out := tfApply(t, tfBin, dir, vars)
	t.Logf("terraform init + apply + output: %v", time.Since(start).Round(time.Millisecond))
	var outputs struct {
		NamesrvAddresses struct{ Value string }            `json:"namesrv_addresses"`
		TierURL          struct{ Value string }            `json:"tier_url"`
		Hosts            struct{ Value map[string]tfHost } `json:"hosts"`
	}
	if err := json.Unmarshal(out, &outputs); err != nil {
		t.Fatalf("terraform output -json: %v\n%s", err, out)
	}
	nsAddr, brokerAddr := fmt.Sprintf("%s:%d", nsHost, nsPort), fmt.Sprintf("%s:%d", brokerHost, brokerPort)
	if outputs.NamesrvAddresses.Value != nsAddr {
		t.Errorf("namesrv_addresses = %q, want %q", outputs.NamesrvAddresses.Value, nsAddr)
	}
	wantTier := fmt.Sprintf("minio://%s/%s/%s", srv.Endpoint, bucket, prefix)
	if outputs.TierURL.Value != wantTier {
		t.Errorf("tier_url = %q, want %q", outputs.TierURL.Value, wantTier)
	}
	if strings.Contains(string(out), srv.SecretKey) || strings.Contains(string(out), srv.AccessKey) {
		t.Errorf("the rendered files carry MinIO credentials")
	}
	ns, broker := outputs.Hosts.Value[nsHost], outputs.Hosts.Value[brokerHost]
	if ns.Role != "namesrv" || broker.Role != "broker" {
		t.Fatalf("hosts output: %s is %q, %s is %q; want namesrv and broker", nsHost, ns.Role, brokerHost, broker.Role)
	}

	// The operator installs the rendered environment files and creates the
	// credentials file (README: MINIO_ACCESS_KEY / MINIO_SECRET_KEY, 0600).
	for _, h := range []tfHost{ns, broker} {
		writeFile(t, h.EnvironmentFilePath, h.EnvironmentFile, 0o644)
	}
	writeFile(t, credentials, fmt.Sprintf("MINIO_ACCESS_KEY=%s\nMINIO_SECRET_KEY=\"%s\"\n", srv.AccessKey, srv.SecretKey), 0o600)

	// Each node's command line and environment, as systemd builds them.
	nsArgs, nsEnv := unitCommand(t, ns, bin)
	brokerArgs, brokerEnv := unitCommand(t, broker, bin)
	if got := strings.Join(nsArgs, " "); got != "namesrv" {
		t.Fatalf("the name server's unit runs `strata %s`, want `strata namesrv`", got)
	}
	if got := strings.Join(brokerArgs, " "); got != "broker" {
		t.Fatalf("the broker's unit runs `strata %s`, want `strata broker`", got)
	}
	brokerVars := envMap(brokerEnv)
	for k, want := range map[string]string{
		"STRATA_ROLE": "leader", "STRATA_NAMESRV": nsAddr, "STRATA_LISTEN": brokerAddr, "STRATA_ADVERTISE": brokerAddr,
		"STRATA_TIER": wantTier, "STRATA_DATA_DIR": dataDir, "STRATA_SEGMENT_MAX_AGE": "1s", "STRATA_HOT_RETENTION": "0",
		"STRATA_FLUSH": "sync", "MINIO_SECRET_KEY": srv.SecretKey,
	} {
		if brokerVars[k] != want {
			t.Errorf("the broker's environment has %s=%q, want %q", k, brokerVars[k], want)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	start = time.Now()
	nsNode := readerStartNode(t, "namesrv", nsAddr, "", fmt.Sprintf("%s:%d", nsHost, httpPort), nsEnv, nsArgs...)
	brokerNode := readerStartNode(t, "broker", nsAddr, brokerAddr, fmt.Sprintf("%s:%d", brokerHost, httpPort), brokerEnv, brokerArgs...)
	brokerNode.dataDir = dataDir
	t.Logf("name server and broker up from the rendered units in %v", time.Since(start).Round(time.Millisecond))

	// Produce, consume back (from the hot tier).
	const queues, n, size = 2, 400, 1024
	topic := uniq("TerraformOnPrem")
	brokerNode.createTopic(t, topic, queues, false)
	hist := newReaderHistory()
	readerProduce(t, readerProducer(t, nsNode.namesrv), topic, hist, "tf", n, size, 20)
	hist.checkDense(t, queues)
	got := newReaderLog("strata")
	c := readerStartStrataConsumer(t, nsNode.namesrv, topic, uniq("tfg"), got)
	readerWaitAll(t, 20*time.Second, n, got)
	c.stop(t)
	readerVerify(t, got, hist, true)

	// Segments sealed after a second are offloaded to MinIO and, with
	// hot_retention 0, deleted locally.
	start = time.Now()
	waitTier(t, brokerNode.strata, func(st tierStatus) bool {
		return st.Tier != nil && st.Tier.PendingSegments == 0 && queuesCold(st, topic) == n && hotEmpty(st, topic)
	})
	mc := srv.Client(t)
	var segs []string
	waitFor(t, 20*time.Second, "segment objects under "+prefix+"/ in bucket "+bucket, func() bool {
		segs = segs[:0]
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for o := range mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix + "/", Recursive: true}) {
			if o.Err != nil {
				return false
			}
			if strings.HasSuffix(o.Key, ".seg") && o.Size > 0 {
				segs = append(segs, o.Key)
			}
		}
		return len(segs) > 0
	}, func() string { return fmt.Sprint(segs) })
	t.Logf("all %d messages offloaded; %d segment objects in the bucket after %v (e.g. %s)", n, len(segs), time.Since(start).Round(time.Millisecond), segs[0])

	// A fresh consumer reads it all back, now from the cold tier.
	readerClientReads(t, "from the cold tier", nsNode.namesrv, topic, hist, queues, func(q int) (int64, int64) { return 0, int64(hist.queueLen(q)) })
	t.Logf("total %v", time.Since(t0).Round(time.Millisecond))
}

// isolateEnv removes the test process's own Strata settings and object-store
// credentials from the environment the nodes inherit, so that they get
// exactly what the rendered and operator-written files say.
func isolateEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		strataSetting := strings.HasPrefix(k, "STRATA_") && !strings.HasPrefix(k, "STRATA_E2E_") && k != miniotest.SkipEnv
		if strataSetting || strings.HasPrefix(k, "MINIO_") || strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, "") // restored when the test ends
			os.Unsetenv(k)
		}
	}
}

// tfApply runs terraform init, apply and output on the on-prem example
// with vars, keeping Terraform's data and state in dir (nothing is written
// to the source tree), and returns `terraform output -json`.
func tfApply(t *testing.T, tfBin, dir string, vars map[string]any) []byte {
	t.Helper()
	example, err := filepath.Abs(filepath.Join("..", "terraform", "examples", "onprem-minio"))
	if err != nil {
		t.Fatal(err)
	}
	varFile := filepath.Join(dir, "test.tfvars.json")
	b, err := json.Marshal(vars)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, varFile, string(b), 0o644)
	state := filepath.Join(dir, "terraform.tfstate")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	run := func(args ...string) []byte {
		cmd := exec.CommandContext(ctx, tfBin, append([]string{"-chdir=" + example}, args...)...)
		cmd.Env = append(os.Environ(),
			"TF_DATA_DIR="+filepath.Join(dir, "tfdata"),
			"TF_CLI_CONFIG_FILE="+os.DevNull, // no provider mirrors or credentials: none are needed
			"TF_IN_AUTOMATION=1", "TF_INPUT=0", "CHECKPOINT_DISABLE=1")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("terraform %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
		}
		return out
	}
	run("init", "-backend=false", "-input=false", "-no-color")
	run("apply", "-auto-approve", "-input=false", "-no-color", "-state="+state, "-var-file="+varFile)
	return run("output", "-json", "-no-color", "-state="+state)
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// unitCommand reads h's systemd unit as systemd would to start it: the
// arguments of ExecStart (whose program must be bin) and the environment
// its EnvironmentFile= lines give, in order, later files overriding
// earlier ones; a "-" path may be missing.
func unitCommand(t *testing.T, h tfHost, bin string) (args, env []string) {
	t.Helper()
	var cmdline []string
	var vars []string
	for _, line := range strings.Split(h.SystemdUnit, "\n") {
		switch {
		case strings.HasPrefix(line, "ExecStart="):
			if cmdline != nil {
				t.Fatalf("%s: two ExecStart= lines", h.UnitName)
			}
			if strings.ContainsAny(line, `"'\%$`) {
				t.Fatalf("%s: ExecStart needs quoting or specifiers this test does not expand: %s", h.UnitName, line)
			}
			cmdline = strings.Fields(strings.TrimPrefix(line, "ExecStart="))
		case strings.HasPrefix(line, "EnvironmentFile="):
			path := strings.TrimPrefix(line, "EnvironmentFile=")
			optional := strings.HasPrefix(path, "-")
			path = strings.TrimPrefix(path, "-")
			b, err := os.ReadFile(path)
			if errors.Is(err, os.ErrNotExist) && optional {
				continue
			}
			if err != nil {
				t.Fatalf("%s: EnvironmentFile=%s: %v", h.UnitName, path, err)
			}
			kvs, err := parseEnvFile(string(b))
			if err != nil {
				t.Fatalf("%s: EnvironmentFile=%s: %v", h.UnitName, path, err)
			}
			vars = append(vars, kvs...)
		}
	}
	if len(cmdline) < 2 || cmdline[0] != bin {
		t.Fatalf("%s: ExecStart is %q, want %s and a subcommand", h.UnitName, cmdline, bin)
	}
	// Later assignments win, as in systemd (and in exec.Cmd.Env).
	seen := map[string]bool{}
	for i := len(vars) - 1; i >= 0; i-- {
		k, _, _ := strings.Cut(vars[i], "=")
		if !seen[k] {
			seen[k] = true
			env = append([]string{vars[i]}, env...)
		}
	}
	return cmdline[1:], env
}

func envMap(env []string) map[string]string {
	m := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// parseEnvFile reads an environment file with the rules of systemd's
// EnvironmentFile= (systemd.exec(5)): KEY=VALUE lines; blank lines and
// lines starting with # or ; are comments; whitespace around the key and
// the value is dropped; a double-quoted value may hold \" \\ \` \$ escapes
// (any other backslash is kept), a single-quoted one is verbatim; in an
// unquoted value a backslash keeps the next character; a backslash before
// a newline continues the line; lines without "=" are ignored. It returns
// KEY=VALUE strings in file order and fails on an invalid name.
func parseEnvFile(s string) ([]string, error) {
	const (
		preKey = iota
		key
		preValue
		value
		valueEscape
		single
		double
		doubleEscape
		comment
		commentEscape
	)
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
	isNewline := func(c byte) bool { return c == '\n' || c == '\r' }
	var out []string
	var k, v []byte
	lastSpace := -1 // where trailing whitespace of an unquoted value starts
	push := func() error {
		name := strings.TrimRight(string(k), " \t")
		val := v
		if lastSpace >= 0 {
			val = val[:lastSpace]
		}
		k, v, lastSpace = k[:0], v[:0], -1
		for i, c := range []byte(name) {
			if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
				return fmt.Errorf("invalid variable name %q", name)
			}
		}
		if name == "" {
			return errors.New("empty variable name")
		}
		out = append(out, name+"="+string(val))
		return nil
	}
	state := preKey
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch state {
		case preKey:
			switch {
			case c == '#' || c == ';':
				state = comment
			case !isSpace(c):
				state = key
				k = append(k, c)
			}
		case key:
			switch {
			case isNewline(c): // no "=": ignored
				state, k = preKey, k[:0]
			case c == '=':
				state, lastSpace = preValue, -1
			default:
				k = append(k, c)
			}
		case preValue:
			switch {
			case isNewline(c):
				if err := push(); err != nil {
					return nil, err
				}
				state = preKey
			case c == '\'':
				state = single
			case c == '"':
				state = double
			case c == '\\':
				state = valueEscape
			case !isSpace(c):
				state = value
				v = append(v, c)
			}
		case value:
			switch {
			case isNewline(c):
				if err := push(); err != nil {
					return nil, err
				}
				state = preKey
			case c == '\\':
				state, lastSpace = valueEscape, -1
			default:
				if !isSpace(c) {
					lastSpace = -1
				} else if lastSpace < 0 {
					lastSpace = len(v)
				}
				v = append(v, c)
			}
		case valueEscape:
			state = value
			if !isNewline(c) {
				v = append(v, c)
			}
		case single:
			if c == '\'' {
				state = preValue
			} else {
				v = append(v, c)
			}
		case double:
			switch c {
			case '"':
				state = preValue
			case '\\':
				state = doubleEscape
			default:
				v = append(v, c)
			}
		case doubleEscape:
			state = double
			switch {
			case strings.IndexByte("\"\\`$", c) >= 0:
				v = append(v, c)
			case c == '\n':
			default:
				v = append(v, '\\', c)
			}
		case comment:
			if c == '\\' {
				state = commentEscape
			} else if isNewline(c) {
				state = preKey
			}
		case commentEscape:
			state = comment
		}
	}
	switch state {
	case preValue, value, valueEscape, single, double, doubleEscape:
		if err := push(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// TestTerraformEnvFileSyntax pins parseEnvFile to systemd's rules, on what the
// strata-node module renders (double-quoted, escaped) and on what an
// operator may write by hand.
func TestTerraformEnvFileSyntax(t *testing.T) {
	in := "# comment\n" +
		"; another\n" +
		"\n" +
		"STRATA_TIER=\"minio://127.0.0.1:9000/b/p\"\n" +
		"ODD=\"a \\\"b\\\" \\$HOME \\`c\\` \\\\d 'e' #f \\n\"\n" +
		"  PLAIN =  value with  spaces  \n" +
		"SINGLE='it''s \\ \"raw\"'\n" +
		"ESC=a\\ b\\\\c\n" +
		"CONT=\"one \\\ntwo\"\n" +
		"EMPTY=\n" +
		"NOEQUALS\n" +
		"LAST=\"no newline\""
	got, err := parseEnvFile(in)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"STRATA_TIER=minio://127.0.0.1:9000/b/p",
		"ODD=a \"b\" $HOME `c` \\d 'e' #f \\n",
		"PLAIN=value with  spaces",
		"SINGLE=its \\ \"raw\"",
		"ESC=a b\\c",
		"CONT=one two",
		"EMPTY=",
		"LAST=no newline",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("parseEnvFile:\n got %q\nwant %q", got, want)
	}
	if _, err := parseEnvFile("1BAD=x\n"); err == nil {
		t.Errorf("a name starting with a digit was accepted")
	}
}
