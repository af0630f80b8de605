package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// TestREADMEFirstTry runs README.md's first section as a new user would:
// its fenced shell blocks, in order, with real openssl and curl on
// loopback, then the openssl and Chromium recipes that follow it. The
// commands run as written, but for what a test must change: `go run
// ./cmd/tlsresume` is the binary built here (the proxy's invocation gets
// --listen and --web, its defaults made explicit), the README's ports
// (8080, 8081, 9443, 9444) are free ones, HOME is a scratch directory
// (and TLSRESUME_HOME unset), and as root Chromium gets --no-sandbox.
//
// A block whose first line says "(leave it running)" runs in the
// background, as in a terminal of its own; a ```text block after it lists
// lines to wait for in its output, and a ```text block after any other
// block lines its output must hold. A ```log block holds console lines of
// the proxy, matched with any time of day and program version. Each region
// must then have added a record whose both legs resumed, read from the
// live view's /api/records as the README tells the user to look.
func TestREADMEFirstTry(t *testing.T) {
	for _, tool := range []string{"bash", "openssl", "curl"} {
		tlstest.Need(t, tool)
	}
	doc, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	r := newRecipeRun(ctx, t)
	for _, region := range []struct{ start, end string }{
		{"<!-- first-try:", "<!-- end of first-try -->"},
		{"<!-- recipe openssl:", "<!-- end of recipe openssl -->"},
		{"<!-- recipe chromium:", "<!-- end of recipe chromium -->"},
	} {
		blocks, err := fencedBlocks(string(doc), region.start, region.end)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(region.start, "chromium") {
			tlstest.Need(t, "chromium")
			tlstest.Need(t, "certutil")
		}
		cursor := r.recordsCursor()
		for _, b := range blocks {
			r.block(b)
		}
		r.bothResumedSince(region.start, cursor)
	}
}

// fencedBlock is one ``` block of README.md: its language and text.
type fencedBlock struct{ lang, text string }

// fencedBlocks returns the fenced blocks between the line that starts with
// start and the line end.
func fencedBlocks(doc, start, end string) ([]fencedBlock, error) {
	i := strings.Index(doc, "\n"+start)
	j := strings.Index(doc, "\n"+end)
	if i < 0 || j < i {
		return nil, fmt.Errorf("README.md lacks the markers %q … %q", start, end)
	}
	var out []fencedBlock
	var cur *fencedBlock
	for line := range strings.Lines(doc[i+1 : j]) {
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			cur = &fencedBlock{lang: strings.TrimSpace(line[3:])}
		case cur != nil && strings.TrimSpace(line) == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.text += line
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("README.md has no fenced block after %q", start)
	}
	return out, nil
}

// recipeRun is one user's session: a directory, an environment, the
// processes left running, and the output of the last block.
type recipeRun struct {
	ctx     context.Context
	t       *testing.T
	dir     string
	env     []string
	bin     string
	ports   map[string]string // README's port → this run's
	bg      []*tlstest.Buffer
	last    *tlstest.Buffer // the last block's output (stdout for one that ended)
	lastBG  bool
	lastCmd *exec.Cmd
}

func newRecipeRun(ctx context.Context, t *testing.T) *recipeRun {
	dir := t.TempDir()
	bin := filepath.Join(dir, "tlsresume")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v: %s", err, out)
	}
	work := filepath.Join(dir, "work")
	for _, d := range []string{work, filepath.Join(dir, "home")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	r := &recipeRun{ctx: ctx, t: t, dir: work, bin: bin, ports: map[string]string{}}
	// A fresh machine's user: no TLSRESUME_HOME, so the CA is made in
	// HOME's config directory on first run.
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); name != "TLSRESUME_HOME" && name != "XDG_CONFIG_HOME" && name != "HOME" {
			r.env = append(r.env, kv)
		}
	}
	r.env = append(r.env, "HOME="+filepath.Join(dir, "home"))
	seen := map[int]bool{}
	for _, p := range []string{"8080", "8081", "9443", "9444"} {
		port := tlstest.FreePort(t)
		for seen[port] {
			port = tlstest.FreePort(t)
		}
		seen[port] = true
		r.ports[p] = strconv.Itoa(port)
	}
	return r
}

var (
	readmePorts = regexp.MustCompile(`\b(8080|8081|9443|9444)\b`)
	// the proxy's invocation: no command word, or "proxy", before its flags
	proxyInvocation = regexp.MustCompile(`(?m)go run \./cmd/tlsresume( proxy)?( --| #|$)`)
	chromiumRun     = regexp.MustCompile(`(?m)^chromium `)
)

// substitute makes a README text this run's: its ports, its binary.
func (r *recipeRun) substitute(s string) string {
	s = readmePorts.ReplaceAllStringFunc(s, func(p string) string { return r.ports[p] })
	s = proxyInvocation.ReplaceAllString(s, "go run ./cmd/tlsresume --listen 127.0.0.1:"+r.ports["8080"]+" --web 127.0.0.1:"+r.ports["8081"]+"$2")
	s = strings.ReplaceAll(s, "go run ./cmd/tlsresume", r.bin)
	if os.Geteuid() == 0 {
		s = chromiumRun.ReplaceAllString(s, "chromium --no-sandbox ") // Chromium refuses root without it
	}
	return s
}

func (r *recipeRun) block(b fencedBlock) {
	r.t.Helper()
	switch b.lang {
	case "sh":
		if strings.Contains(strings.SplitN(b.text, "\n", 2)[0], "(leave it running)") {
			r.background(r.substitute(b.text))
		} else {
			r.foreground(r.substitute(b.text))
		}
	case "text":
		r.expect(strings.Split(strings.TrimSpace(r.substitute(b.text)), "\n"))
	case "log":
		r.expectLog(strings.Split(strings.TrimSpace(r.substitute(b.text)), "\n"))
	default:
		r.t.Fatalf("README.md: a ```%s block in a tested section; want sh, text or log", b.lang)
	}
}

// background starts a block as a terminal of its own would run it.
func (r *recipeRun) background(script string) {
	out := &tlstest.Buffer{}
	cmd := tlstest.Command(r.ctx, "bash", "-ec", script)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = r.dir, r.env, out, out
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("starting %q: %v", script, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	r.t.Cleanup(func() {
		select {
		case <-exited:
		default:
			tlstest.KillGroup(cmd)
			<-exited
		}
	})
	r.bg = append(r.bg, out)
	r.last, r.lastBG, r.lastCmd = out, true, cmd
}

// foreground runs a block to its end. A Chromium load aborted because the
// machine's addresses changed (other tests make network namespaces) is
// run again, as tlstest.DumpDOM does.
func (r *recipeRun) foreground(script string) {
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(r.ctx, 2*time.Minute)
		stdout, stderr := &tlstest.Buffer{}, &tlstest.Buffer{}
		cmd := tlstest.Command(ctx, "bash", "-ec", script)
		cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = r.dir, r.env, stdout, stderr
		err := cmd.Run()
		cancel()
		if strings.Contains(stdout.String()+stderr.String(), "ERR_NETWORK_CHANGED") && attempt < 3 {
			r.t.Logf("running again (the network changed during Chromium's load): %s", script)
			continue
		}
		if err != nil {
			r.t.Fatalf("README.md's block failed: %v\n%s\nstdout: %s\nstderr: %s", err, script, stdout, tlstest.Tail(stderr.String(), 2000))
		}
		r.last, r.lastBG = stdout, false
		return
	}
}

// expect checks lines against the last block's output: a background one is
// waited for (up to 30 s), a finished one must hold them already.
func (r *recipeRun) expect(lines []string) {
	r.t.Helper()
	if r.last == nil {
		r.t.Fatalf("README.md: a ```text block before any command")
	}
	holds := func() (missing string) {
		for _, l := range lines {
			if !strings.Contains(r.last.String(), l) {
				return l
			}
		}
		return ""
	}
	deadline := time.Now().Add(30 * time.Second)
	for r.lastBG && holds() != "" && time.Now().Before(deadline) && r.lastCmd.ProcessState == nil {
		time.Sleep(20 * time.Millisecond)
	}
	if l := holds(); l != "" {
		r.t.Fatalf("README.md says the output holds %q; it was:\n%s", l, tlstest.Tail(r.last.String(), 3000))
	}
}

// expectLog checks console lines against everything running in the
// background, with any time of day and any version of a program.
func (r *recipeRun) expectLog(lines []string) {
	r.t.Helper()
	for _, l := range lines {
		re := looseLine(l)
		deadline := time.Now().Add(10 * time.Second)
		for !r.bgMatch(re) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if !r.bgMatch(re) {
			var all strings.Builder
			for _, b := range r.bg {
				all.WriteString(b.String())
			}
			r.t.Fatalf("README.md shows the console line %q; the console said:\n%s", l, tlstest.Tail(all.String(), 3000))
		}
	}
}

func (r *recipeRun) bgMatch(re *regexp.Regexp) bool {
	for _, b := range r.bg {
		if re.MatchString(b.String()) {
			return true
		}
	}
	return false
}

var (
	timeOfDay  = regexp.MustCompile(`\d\d:\d\d:\d\d`)
	programVer = regexp.MustCompile(`([A-Za-z]+)/\d+(?:\\\.\d+)*`)
)

// looseLine matches a console line with any time of day and version.
func looseLine(l string) *regexp.Regexp {
	q := regexp.QuoteMeta(l)
	q = timeOfDay.ReplaceAllString(q, `\d\d:\d\d:\d\d`)
	q = programVer.ReplaceAllString(q, `$1/\S+`)
	return regexp.MustCompile(`(?m)^` + q + `$`)
}

// recordsPage is the live view's answer to /api/records.
type recordsPage struct {
	Records []inspect.ConnRecord `json:"records"`
	Next    int                  `json:"next"`
}

func (r *recipeRun) records(since int) (recordsPage, error) {
	var page recordsPage
	url := fmt.Sprintf("http://127.0.0.1:%s/api/records?since=%d&limit=10000", r.ports["8081"], since)
	req, err := http.NewRequestWithContext(r.ctx, "GET", url, nil)
	if err != nil {
		return page, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return page, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return page, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return page, json.NewDecoder(resp.Body).Decode(&page)
}

// recordsCursor is where the view's records stand now: 0 before the
// proxy runs.
func (r *recipeRun) recordsCursor() int {
	page, err := r.records(0)
	if err != nil {
		return 0
	}
	return page.Next
}

// bothResumedSince waits (up to 10 s: a record is final when its
// connection closes) for a record after cursor whose both legs resumed.
func (r *recipeRun) bothResumedSince(region string, cursor int) {
	r.t.Helper()
	var page recordsPage
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if page, err = r.records(cursor); err != nil {
			continue
		}
		for _, rec := range page.Records {
			if rec.ClientLeg != nil && rec.ClientLeg.Resumed && rec.UpstreamLeg != nil && rec.UpstreamLeg.Resumed &&
				rec.Verdict.Code == inspect.CodeBothResumed {
				return
			}
		}
	}
	var got []string
	for _, rec := range page.Records {
		got = append(got, rec.ID+" "+string(rec.Verdict.Code))
	}
	r.t.Fatalf("%s: no record of the live view resumed on both legs (err %v); records: %v", region, err, got)
}
