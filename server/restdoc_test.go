package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRESTDocExamples runs every curl example of docs/rest.md, in order,
// against a live server and checks the status each one documents. The
// doc sets its own variables: PAIRGATE and TOKEN in its first block (given
// here the test server's), the rest by NAME=$(curl … | jq -r .path).
func TestRESTDocExamples(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "docs", "rest.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	for _, set := range []string{"PAIRGATE=http://127.0.0.1:18789\n", "TOKEN=$(cat ~/.openclaw/nodes/operator.token)\n"} {
		if !strings.Contains(doc, set) {
			t.Fatalf("docs/rest.md no longer starts its session with %q", set)
		}
	}
	examples := curlExamples(doc)
	if len(examples) < 17 {
		t.Fatalf("found %d curl examples in docs/rest.md", len(examples))
	}
	ts := startServer(t)
	vars := map[string]string{"PAIRGATE": ts.url, "TOKEN": testToken}
	for _, ex := range examples {
		for _, name := range usedVars(ex.command) {
			if _, ok := vars[name]; !ok {
				t.Fatalf("%s\n  uses $%s, which no example before it sets", ex.command, name)
			}
		}
		args := shellWords(ex.command, vars)
		req, timeout := curlRequest(t, args)
		client := &http.Client{Timeout: timeout}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", ex.command, err)
		}
		body, _ := io.ReadAll(resp.Body) // a --max-time stream ends by timeout
		resp.Body.Close()
		if resp.StatusCode != ex.status {
			t.Fatalf("%s\n  = %d %s, documented %d", ex.command, resp.StatusCode, body, ex.status)
		}
		if ex.setVar != "" {
			v := jqPath(body, ex.jqPath)
			if v == "" {
				t.Fatalf("%s\n  answered %s: jq -r %s finds nothing", ex.command, body, ex.jqPath)
			}
			vars[ex.setVar] = v
		}
		if strings.Contains(ex.command, "/events") && !strings.Contains(string(body), "id: 1\nevent: node.pair.requested\n") {
			t.Fatalf("event stream example got %q", body)
		}
	}
}

var varRE = regexp.MustCompile(`\$([A-Z_]+)`)

// usedVars are the $NAMEs a command expands (outside single quotes too:
// the docs close the quote around a variable, '…'$NODE_TOKEN'…').
func usedVars(cmd string) []string {
	var out []string
	for _, m := range varRE.FindAllStringSubmatch(cmd, -1) {
		out = append(out, m[1])
	}
	return out
}

// jqPath is `jq -r .a.b` for the paths the docs use: object keys only.
func jqPath(body []byte, path string) string {
	var v any
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	for _, key := range strings.Split(strings.TrimPrefix(path, "."), ".") {
		obj, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = obj[key]
	}
	s, _ := v.(string)
	return s
}

type curlExample struct {
	command string
	status  int
	// setVar and jqPath: NAME=$(curl … | jq -r PATH) keeps PATH of the
	// answer as $NAME.
	setVar, jqPath string
}

var assignStartRE = regexp.MustCompile(`^[A-Z_]+=\$\(curl `)

var assignRE = regexp.MustCompile(`^([A-Z_]+)=\$\((curl .*) \| jq -r (\.[A-Za-z.]+)\)$`)

var statusLine = regexp.MustCompile(`^# → (\d{3})`)

// curlExamples finds each curl command (with its continuation lines) in
// the sh blocks and the status documented on the "# → NNN" line after it.
func curlExamples(doc string) []curlExample {
	var out []curlExample
	lines := strings.Split(doc, "\n")
	for i := 0; i < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "curl ") && !assignStartRE.MatchString(lines[i]) {
			continue
		}
		cmd := lines[i]
		for strings.HasSuffix(cmd, "\\") && i+1 < len(lines) {
			i++
			cmd = strings.TrimSuffix(cmd, "\\") + " " + strings.TrimSpace(lines[i])
		}
		if i+1 < len(lines) {
			if m := statusLine.FindStringSubmatch(lines[i+1]); m != nil {
				status, _ := strconv.Atoi(m[1])
				ex := curlExample{command: cmd, status: status}
				if m := assignRE.FindStringSubmatch(cmd); m != nil {
					ex.setVar, ex.command, ex.jqPath = m[1], m[2], m[3]
				} else if !strings.HasPrefix(cmd, "curl ") {
					panic("docs/rest.md: a command this test does not understand: " + cmd)
				}
				out = append(out, ex)
			}
		}
	}
	return out
}

// shellWords splits a command as sh would: quotes, and $VAR expansion
// outside single quotes.
func shellWords(cmd string, vars map[string]string) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	quote := byte(0)
	for i := 0; i < len(cmd); i++ {
		ch := cmd[i]
		switch {
		case quote == '\'':
			if ch == '\'' {
				quote = 0
			} else {
				cur.WriteByte(ch)
			}
		case ch == '\'' || ch == '"':
			if quote == ch {
				quote = 0
			} else if quote == 0 {
				quote = ch
			} else {
				cur.WriteByte(ch)
			}
			inWord = true
		case ch == '$':
			j := i + 1
			for j < len(cmd) && (cmd[j] == '_' || cmd[j] >= 'A' && cmd[j] <= 'Z') {
				j++
			}
			cur.WriteString(vars[cmd[i+1:j]])
			i = j - 1
			inWord = true
		case ch == ' ' && quote == 0:
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// curlRequest understands the curl flags the docs use.
func curlRequest(t *testing.T, args []string) (*http.Request, time.Duration) {
	t.Helper()
	method, url, body := "", "", ""
	timeout := 10 * time.Second
	header := http.Header{}
	for i := 1; i < len(args); i++ {
		switch args[i] {
		case "-s", "-N":
		case "-X":
			i++
			method = args[i]
		case "-H":
			i++
			k, v, _ := strings.Cut(args[i], ": ")
			header.Set(k, v)
		case "-d":
			i++
			body = args[i]
		case "--max-time":
			i++
			secs, _ := strconv.Atoi(args[i])
			timeout = time.Duration(secs) * time.Second
		default:
			if strings.HasPrefix(args[i], "-") {
				t.Fatalf("curl flag %s is not understood by this test", args[i])
			}
			url = args[i]
		}
	}
	if method == "" {
		method = "GET"
		if body != "" {
			method = "POST"
		}
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" && header.Get("Content-Type") == "" {
		header.Set("Content-Type", "application/x-www-form-urlencoded") // as curl -d sends
	}
	req.Header = header
	return req, timeout
}
