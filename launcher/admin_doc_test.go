package launcher

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/circlegate/circlegate/admin"
	"github.com/circlegate/circlegate/internal/testapps"
)

// TestAdminDocWalkthrough runs docs/admin-api.md: every ```sh block, in order, as a
// small shell would, against a real gateway. Each request must answer the status its
// comment shows (# 200 ...), and together the requests must reach every route of
// admin.Routes. So the page and the code cannot drift apart.
//
// The interpreter knows what the page uses: NAME=value, NAME=$(...) around curl
// (optionally | jq -r PATH), jq -r PATH FILE, echo "$V" | jq -r PATH, and
// bin/circlegate keygen/sign; bin/circlegate serve starts the gateway (with its
// --root-key and -k flags), make is skipped, and bin/apps/NAME.wasm is the example
// app built by testapps. Anything else fails the test.
func TestAdminDocWalkthrough(t *testing.T) {
	doc, err := os.ReadFile("../docs/admin-api.md")
	if err != nil {
		t.Fatal(err)
	}
	sh := &docShell{t: t, dir: t.TempDir(), vars: map[string]string{}, reached: map[string]int{}}
	lines := shLines(t, string(doc))
	if len(lines) < 40 {
		t.Fatalf("only %d commands in the sh blocks of docs/admin-api.md", len(lines))
	}
	for i, l := range lines {
		want := 0
		if i+1 < len(lines) {
			want = expectedStatus(lines[i+1].text)
		}
		sh.run(l, want)
	}
	if sh.env == nil {
		t.Fatal("the page never starts the gateway")
	}
	for _, rt := range admin.Routes() {
		if sh.reached[rt.Method+" "+rt.Path] == 0 {
			t.Errorf("docs/admin-api.md has no example of %s %s", rt.Method, rt.Path)
		}
	}
}

// docLine is one command (continuations joined) or comment of a ```sh block.
type docLine struct {
	text string
	line int // in the file, for messages
}

// shLines returns the commands and comments of every ```sh block, in order.
func shLines(t *testing.T, doc string) []docLine {
	t.Helper()
	var out []docLine
	in := false
	for i, l := range strings.Split(doc, "\n") {
		switch {
		case strings.HasPrefix(l, "```sh"):
			in = true
		case strings.HasPrefix(l, "```"):
			in = false
		case in && strings.TrimSpace(l) != "":
			if n := len(out); n > 0 && strings.HasSuffix(out[n-1].text, "\\") {
				out[n-1].text = strings.TrimSuffix(out[n-1].text, "\\") + " " + strings.TrimSpace(l)
				continue
			}
			out = append(out, docLine{strings.TrimSpace(l), i + 1})
		}
	}
	return out
}

var statusComment = regexp.MustCompile(`^# ([1-5][0-9][0-9])(\s|$)`)

// expectedStatus returns the status of a "# 200 ..." comment, or 0.
func expectedStatus(line string) int {
	m := statusComment.FindStringSubmatch(line)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

type docShell struct {
	t       *testing.T
	dir     string
	vars    map[string]string
	env     *env
	reached map[string]int // route template -> requests that reached it
}

var (
	assignSubst = regexp.MustCompile(`^([A-Z_][A-Z0-9_]*)=\$\((.*)\)$`)
	assignValue = regexp.MustCompile(`^([A-Z_][A-Z0-9_]*)=(.*)$`)
	jqPipe      = regexp.MustCompile(`^(.*) \| jq -r (\S+)$`)
)

// run runs one line; want is the status of the comment that follows it (0: none).
func (sh *docShell) run(l docLine, want int) {
	t := sh.t
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("docs/admin-api.md:%d: %s: %s", l.line, l.text, fmt.Sprintf(format, args...))
	}
	text := strings.TrimSuffix(l.text, " &")
	if i := strings.Index(text, "  # "); i >= 0 { // a trailing comment
		text = strings.TrimSpace(text[:i])
	}
	switch {
	case strings.HasPrefix(text, "#"):
		return
	case strings.HasPrefix(text, "make "):
		return
	}
	if m := assignSubst.FindStringSubmatch(text); m != nil {
		v, err := sh.substitute(m[2], want)
		if err != nil {
			fail("%v", err)
		}
		sh.vars[m[1]] = v
		return
	}
	if m := assignValue.FindStringSubmatch(text); m != nil && !strings.Contains(m[1], " ") {
		if m[1] == "URL" && sh.env != nil {
			return // the gateway listens where the test put it
		}
		words, err := sh.words(m[2])
		if err != nil || len(words) != 1 {
			fail("not one word: %v", err)
		}
		sh.vars[m[1]] = words[0]
		return
	}
	words, err := sh.words(text)
	if err != nil {
		fail("%v", err)
	}
	switch {
	case words[0] == "curl":
		if want == 0 {
			fail("a request without a status comment (# 200 ...) under it")
		}
		status, _, err := sh.curl(words[1:])
		if err != nil {
			fail("%v", err)
		}
		if status != want {
			fail("status %d, the page says %d", status, want)
		}
	case len(words) >= 2 && words[0] == "bin/circlegate" && words[1] == "serve":
		sh.serve(words[2:])
	case len(words) == 4 && words[0] == "bin/circlegate" && words[1] == "keygen" && words[2] == ">":
		code, out, errOut := runMain(context.Background(), "keygen")
		if code != 0 {
			fail("keygen: %s", errOut)
		}
		if err := os.WriteFile(filepath.Join(sh.dir, words[3]), []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
	default:
		fail("the doc test does not know this command")
	}
}

// substitute runs the command of a $(...) and returns its output, trimmed.
func (sh *docShell) substitute(cmd string, want int) (string, error) {
	path := ""
	if m := jqPipe.FindStringSubmatch(cmd); m != nil {
		cmd, path = m[1], unquoteOne(m[2])
	}
	words, err := sh.words(cmd)
	if err != nil {
		return "", err
	}
	var out []byte
	switch {
	case words[0] == "curl":
		status, body, err := sh.curl(words[1:])
		if err != nil {
			return "", err
		}
		if want != 0 && status != want {
			return "", fmt.Errorf("status %d, the page says %d: %s", status, want, body)
		}
		if want == 0 && status >= 300 {
			return "", fmt.Errorf("status %d: %s", status, body)
		}
		out = body
	case words[0] == "echo" && len(words) == 2:
		out = []byte(words[1])
	case words[0] == "jq" && len(words) == 4 && words[1] == "-r" && path == "":
		if out, err = os.ReadFile(filepath.Join(sh.dir, words[3])); err != nil {
			return "", err
		}
		path = words[2]
	case words[0] == "bin/circlegate" && len(words) > 1 && words[1] == "sign":
		code, stdout, stderr := runMain(context.Background(), words[1:]...)
		if code != 0 {
			return "", fmt.Errorf("sign: %s", stderr)
		}
		out = []byte(stdout)
	default:
		return "", fmt.Errorf("the doc test does not know the command %q", words[0])
	}
	if path == "" {
		return strings.TrimSpace(string(out)), nil
	}
	return jqPath(out, path)
}

// unquoteOne removes the quotes around a jq filter.
func unquoteOne(s string) string {
	if len(s) >= 2 && (s[0] == '\'' || s[0] == '"') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

// jqPath evaluates a jq path of fields and indexes (.data.tokens[0].tokenId) like
// jq -r: a string comes out raw, and a missing value is an error rather than "null".
func jqPath(doc []byte, path string) (string, error) {
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		return "", fmt.Errorf("jq: not JSON: %s", doc)
	}
	for _, step := range regexp.MustCompile(`\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]`).FindAllStringSubmatch(path, -1) {
		switch {
		case step[1] != "":
			m, ok := v.(map[string]any)
			if !ok {
				return "", fmt.Errorf("jq %s: no field %s in %s", path, step[1], doc)
			}
			v = m[step[1]]
		default:
			a, ok := v.([]any)
			i, _ := strconv.Atoi(step[2])
			if !ok || i >= len(a) {
				return "", fmt.Errorf("jq %s: no index %d in %s", path, i, doc)
			}
			v = a[i]
		}
	}
	switch x := v.(type) {
	case nil:
		return "", fmt.Errorf("jq %s: null in %s", path, doc)
	case string:
		return x, nil
	default:
		b, _ := json.Marshal(x)
		return string(b), nil
	}
}

// serve starts the gateway as the page's serve line asks, with no tenant but those
// of its -k flags.
func (sh *docShell) serve(args []string) {
	sh.t.Helper()
	var roots, tenants []string
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "--root-key":
			i++
			roots = append(roots, args[i])
		case "-k", "--tenant":
			i++
			tenants = append(tenants, args[i])
		default:
			sh.t.Fatalf("docs/admin-api.md: the doc test does not know the serve flag %q", args[i])
		}
	}
	sh.env = startEnv(sh.t, func(c *Config) {
		c.Tenants = nil
		for _, k := range tenants {
			c.Tenants = append(c.Tenants, TenantConfig{PubKey: k})
		}
		c.Admin.RootKeys = roots
	})
	sh.vars["URL"] = sh.env.baseURL
}

// words splits a command line into words as sh does, with $VAR and ${VAR} expanded
// outside single quotes.
func (sh *docShell) words(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unclosed '")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				switch {
				case s[i] == '\\' && i+1 < len(s) && strings.IndexByte(`"\$`+"`", s[i+1]) >= 0:
					i++
					cur.WriteByte(s[i])
				case s[i] == '$':
					n, err := sh.expand(s[i:], &cur)
					if err != nil {
						return nil, err
					}
					i += n - 1
				default:
					cur.WriteByte(s[i])
				}
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unclosed \"")
			}
			inWord = true
		case c == '$':
			n, err := sh.expand(s[i:], &cur)
			if err != nil {
				return nil, err
			}
			i += n - 1
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty command")
	}
	return out, nil
}

var varRef = regexp.MustCompile(`^\$(?:\{([A-Z_][A-Z0-9_]*)\}|([A-Z_][A-Z0-9_]*))`)

// expand writes the value of the variable s starts with and returns its length.
func (sh *docShell) expand(s string, w *strings.Builder) (int, error) {
	m := varRef.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("a $ that is not a variable: %.20s", s)
	}
	name := m[1] + m[2]
	v, ok := sh.vars[name]
	if !ok {
		return 0, fmt.Errorf("variable %s is not set", name)
	}
	w.WriteString(v)
	return len(m[0]), nil
}

// curl sends the request curl's arguments describe and returns the status and body.
// A request to /admin-api must answer {"data"} on success and {"error"} otherwise,
// and counts for the route it reached.
func (sh *docShell) curl(args []string) (int, []byte, error) {
	method, target := "", ""
	header := http.Header{}
	var body io.Reader
	var form *multipart.Writer
	var formBuf bytes.Buffer
	for i := 0; i < len(args); i++ {
		a := args[i]
		next := func() string {
			i++
			if i >= len(args) {
				sh.t.Fatalf("curl %s without a value", a)
			}
			return args[i]
		}
		switch a {
		case "-s", "-N":
		case "-X":
			method = next()
		case "-H":
			k, v, ok := strings.Cut(next(), ":")
			if !ok {
				return 0, nil, fmt.Errorf("header %q", args[i])
			}
			header.Add(k, strings.TrimSpace(v))
		case "-d":
			body = strings.NewReader(next())
			if method == "" {
				method = http.MethodPost
			}
		case "--data-binary":
			b, err := sh.file(next())
			if err != nil {
				return 0, nil, err
			}
			body = bytes.NewReader(b)
			if method == "" {
				method = http.MethodPost
			}
		case "-F":
			if form == nil {
				form = multipart.NewWriter(&formBuf)
			}
			name, v, _ := strings.Cut(next(), "=")
			if strings.HasPrefix(v, "@") {
				b, err := sh.file(v)
				if err != nil {
					return 0, nil, err
				}
				fw, _ := form.CreateFormFile(name, filepath.Base(v[1:]))
				_, _ = fw.Write(b)
			} else {
				_ = form.WriteField(name, v)
			}
			if method == "" {
				method = http.MethodPost
			}
		default:
			if strings.HasPrefix(a, "-") || target != "" {
				return 0, nil, fmt.Errorf("the doc test does not know the curl argument %q", a)
			}
			target = a
		}
	}
	if form != nil {
		_ = form.Close()
		body = &formBuf
		header.Set("Content-Type", form.FormDataContentType())
	}
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		return 0, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if testing.Verbose() {
		sh.t.Logf("%s %s -> %d %s", method, req.URL.Path, resp.StatusCode, raw)
	}
	if strings.HasPrefix(req.URL.Path, admin.Prefix+"/") {
		var r struct {
			Data  json.RawMessage `json:"data"`
			Error json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(raw, &r); err != nil || (resp.StatusCode < 300) != (r.Data != nil && r.Error == nil) {
			return 0, nil, fmt.Errorf("%d with an answer of the wrong shape: %s", resp.StatusCode, raw)
		}
		sh.reach(method, req.URL.Path)
	}
	return resp.StatusCode, raw, nil
}

// reach counts a request for the route template it matches.
func (sh *docShell) reach(method, path string) {
	for _, rt := range admin.Routes() {
		if rt.Method == method && matchTemplate(rt.Path, path) {
			sh.reached[rt.Method+" "+rt.Path]++
			return
		}
	}
}

// matchTemplate reports whether path fits a gorilla/mux template whose variables
// are whole segments.
func matchTemplate(template, path string) bool {
	ts, ps := strings.Split(template, "/"), strings.Split(path, "/")
	if len(ts) != len(ps) {
		return false
	}
	for i, seg := range ts {
		if strings.HasPrefix(seg, "{") {
			if ps[i] == "" {
				return false
			}
			continue
		}
		if seg != ps[i] {
			return false
		}
	}
	return true
}

// file reads @PATH: the example app of bin/apps/NAME.wasm, or a file the page wrote.
func (sh *docShell) file(ref string) ([]byte, error) {
	p, ok := strings.CutPrefix(ref, "@")
	if !ok {
		return nil, fmt.Errorf("%q is not @FILE", ref)
	}
	if name, ok := strings.CutPrefix(p, "bin/apps/"); ok {
		return testapps.Build(sh.t, strings.TrimSuffix(name, ".wasm")), nil
	}
	return os.ReadFile(filepath.Join(sh.dir, p))
}
