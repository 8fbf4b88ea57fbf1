package db

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// The legacy store files (spec/legacy-files.md).
const (
	PairedFile  = "paired.json"
	PendingFile = "pending.json"
	// MaxLegacyFile bounds what import reads: far above a 100,000-node
	// paired.json (~70 MB), far below what would exhaust memory.
	MaxLegacyFile = 128 << 20
	// maxProblems bounds a report; the count of the rest is given.
	maxProblems = 200
)

// LegacyState is what a pair of legacy files holds.
type LegacyState struct {
	Paired  []Node
	Pending []PendingRequest
	// repairUnknown marks pending records without isRepair (2026.4 and
	// later): import works it out from the pairings.
	repairUnknown map[string]bool
	// Unknown lists the fields pairgate does not know, by path; they are
	// kept and written back by export.
	Unknown []string
	// SHA256 of each file as read.
	SHA256 map[string]string
}

type problems struct {
	list []string
	more int
}

func (p *problems) add(file, path, format string, args ...any) {
	p.addLine(file + ": " + path + ": " + fmt.Sprintf(format, args...))
}

func (p *problems) addLine(line string) {
	if len(p.list) >= maxProblems {
		p.more++
		return
	}
	p.list = append(p.list, line)
}

// err is the report: one CodeInvalid error whose message lists every
// problem and whose Details carry them as {"problems": [...]}.
func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	list := p.list
	if p.more > 0 {
		list = append(list, fmt.Sprintf("… and %d more problems", p.more))
	}
	return &Error{Code: CodeInvalid, Details: map[string][]string{"problems": list},
		Message: "the legacy files are not valid; nothing was changed:\n  " + strings.Join(list, "\n  ")}
}

// ReadLegacy validates both files completely before returning anything:
// a file that is nil counts as absent (an empty store).
func ReadLegacy(paired, pending []byte) (LegacyState, error) {
	st := LegacyState{repairUnknown: map[string]bool{}, SHA256: map[string]string{}}
	var p problems
	for _, f := range []struct {
		name string
		data []byte
		read func(string, jvalue, *LegacyState, *problems)
	}{
		{PairedFile, paired, readPaired},
		{PendingFile, pending, readPending},
	} {
		if f.data == nil {
			continue
		}
		sum := sha256.Sum256(f.data)
		st.SHA256[f.name] = hex.EncodeToString(sum[:])
		if len(f.data) > MaxLegacyFile {
			p.add(f.name, "$", "the file is %d bytes; the limit is %d", len(f.data), MaxLegacyFile)
			continue
		}
		if err := CheckUTF8JSON(f.data); err != nil {
			p.addLine(f.name + ": " + err.Error())
			continue
		}
		top, err := eachMember(f.data, func(key string, v jvalue) { f.read(key, v, &st, &p) })
		switch {
		case err != nil:
			p.addLine(f.name + ": " + err.Error())
		case top != jObject:
			p.add(f.name, "$", "want an object mapping ids to records, got %s", top)
		}
	}
	return st, p.err()
}

// ReadLegacyDir reads and validates the legacy files in dir. A missing
// file counts as an empty store; found is false when both are missing.
// Only regular files are read, never through a symbolic link, and at most
// MaxLegacyFile bytes of each: a FIFO, a device or a link is refused before
// anything is read, so nothing here can block or read without end.
func ReadLegacyDir(dir string) (st LegacyState, found bool, err error) {
	var files [2][]byte
	var p problems
	for i, name := range []string{PairedFile, PendingFile} {
		data, problem, err := readLegacyFile(filepath.Join(dir, name))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			return st, false, err
		case problem != "":
			p.addLine(name + ": " + problem)
		}
		files[i], found = data, true
	}
	if err := p.err(); err != nil {
		return st, true, err
	}
	if !found {
		return st, false, nil
	}
	st, err = ReadLegacy(files[0], files[1])
	return st, true, err
}

// readLegacyFile reads one legacy file, or says in problem why it will not.
func readLegacyFile(path string) (data []byte, problem string, err error) {
	// O_NONBLOCK: opening a FIFO must not wait for a writer.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, "$: the file is a symbolic link; pairgate does not follow links here: copy the file itself into the directory, or import from the directory the link points into", nil
	}
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, "", err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Sprintf("$: not a regular file but %s; pairgate reads legacy files only from regular files", fileKind(info.Mode())), nil
	}
	if info.Size() > MaxLegacyFile {
		return nil, fmt.Sprintf("$: the file is %d bytes; the limit is %d", info.Size(), MaxLegacyFile), nil
	}
	data, err = io.ReadAll(io.LimitReader(f, MaxLegacyFile+1))
	if err != nil {
		return nil, "", err
	}
	if len(data) > MaxLegacyFile { // it grew while being read
		return nil, fmt.Sprintf("$: the file grew past the limit of %d bytes while being read", MaxLegacyFile), nil
	}
	return data, "", nil
}

func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO (named pipe)"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "a special file"
}

// record walks one record's members, handing each to its field or, for
// names pairgate does not know, keeping it.
type record struct {
	file, path string
	p          *problems
	extra      Fields
	unknown    *[]string
}

func (r *record) want(name string, v jvalue, kind jkind) bool {
	if v.kind != kind {
		r.p.add(r.file, r.path+"."+name, "want %s, got %s", kind, v.kind)
		return false
	}
	return true
}

func (r *record) str(name string, v jvalue, into *string) {
	if r.want(name, v, jString) {
		*into = v.str
	}
}

func (r *record) integer(name string, v jvalue, into *int64) {
	if !r.want(name, v, jNumber) {
		return
	}
	n, err := v.num.Int64()
	if err != nil {
		r.p.add(r.file, r.path+"."+name, "want a whole number of milliseconds, got %s", v.num)
		return
	}
	*into = n
}

func (r *record) strings(name string, v jvalue, into *[]string) {
	if !r.want(name, v, jArray) {
		return
	}
	out := make([]string, 0, len(v.arr))
	for i, item := range v.arr {
		if item.kind != jString {
			r.p.add(r.file, fmt.Sprintf("%s.%s[%d]", r.path, name, i), "want string, got %s", item.kind)
			return
		}
		out = append(out, item.str)
	}
	*into = out
}

func (r *record) permissions(name string, v jvalue, into *Permissions) {
	if !r.want(name, v, jObject) {
		return
	}
	out := Permissions{}
	for _, m := range v.obj {
		if m.value.kind != jBool {
			r.p.add(r.file, childPath(r.path+"."+name, m.name), "want boolean, got %s", m.value.kind)
			return
		}
		out = append(out, Permission{Name: m.name, Granted: m.value.b})
	}
	*into = jsOrder(out, func(x Permission) string { return x.Name })
}

// meta handles the NodeMeta fields; it reports whether name was one.
func (r *record) meta(name string, v jvalue, m *NodeMeta) bool {
	switch name {
	case "displayName":
		r.str(name, v, &m.DisplayName)
	case "platform":
		r.str(name, v, &m.Platform)
	case "version":
		r.str(name, v, &m.Version)
	case "coreVersion":
		r.str(name, v, &m.CoreVersion)
	case "uiVersion":
		r.str(name, v, &m.UIVersion)
	case "deviceFamily":
		r.str(name, v, &m.DeviceFamily)
	case "modelIdentifier":
		r.str(name, v, &m.ModelIdentifier)
	case "remoteIp":
		r.str(name, v, &m.RemoteIP)
	case "caps":
		r.strings(name, v, &m.Caps)
	case "commands":
		r.strings(name, v, &m.Commands)
	case "permissions":
		r.permissions(name, v, &m.Permissions)
	default:
		return false
	}
	return true
}

// fields walks a record's members: field takes the names it knows
// (reporting whether it did), NodeMeta takes its own, and the rest are
// kept verbatim. It returns the names present.
func (r *record) fields(value jvalue, meta *NodeMeta, field func(name string, v jvalue) bool) map[string]bool {
	present := map[string]bool{}
	for _, m := range value.obj {
		present[m.name] = true
		if !field(m.name, m.value) && !r.meta(m.name, m.value, meta) {
			r.keep(m.name, m.value)
		}
	}
	return present
}

func (r *record) keep(name string, v jvalue) {
	r.extra = append(r.extra, Field{Name: name, Value: v.compact()})
	*r.unknown = append(*r.unknown, r.file+": "+childPath(r.path, name))
}

func (r *record) required(present map[string]bool, names ...string) {
	for _, n := range names {
		if !present[n] {
			r.p.add(r.file, r.path+"."+n, "missing")
		}
	}
}

// id checks a record's own id: present (reported by required), a valid
// id, and the key it is filed under.
func (r *record) id(present map[string]bool, key, field, id string) {
	if r.validID(present, field, id) && id != key {
		r.p.add(r.file, r.path+"."+field, "%q differs from the key it is filed under", id)
	}
}

// validID holds an id to the API's rules: not blank, no white space
// around it (the API trims ids, so such a record could never be verified,
// renamed or removed), and the bounds of every string.
func (r *record) validID(present map[string]bool, field, id string) bool {
	switch {
	case !present[field]:
		return false
	case strings.TrimSpace(id) == "":
		r.p.add(r.file, r.path+"."+field, "empty")
	case id != strings.TrimSpace(id):
		r.p.add(r.file, r.path+"."+field, "white space around the id; the API trims ids, so this record could never be found")
	default:
		return r.check(checkString(field, id))
	}
	return false
}

// check reports a failed input check (whose message starts with the
// field's name) at the record's path, and says whether it passed.
func (r *record) check(err error) bool {
	if err != nil {
		r.p.addLine(r.file + ": " + r.path + "." + ErrorMessage(err))
	}
	return err == nil
}

func readPending(key string, value jvalue, st *LegacyState, p *problems) {
	r := &record{file: PendingFile, path: memberPath(key), p: p, unknown: &st.Unknown}
	if !r.wantRecord(value) {
		return
	}
	var req PendingRequest
	present := r.fields(value, &req.NodeMeta, func(name string, v jvalue) bool {
		switch name {
		case "requestId":
			r.str(name, v, &req.RequestID)
		case "nodeId":
			r.str(name, v, &req.NodeID)
		case "silent":
			if r.want(name, v, jBool) {
				req.Silent = &v.b
			}
		case "isRepair":
			if r.want(name, v, jBool) {
				req.IsRepair = v.b
			}
		case "ts":
			r.integer(name, v, &req.TS)
		default:
			return false
		}
		return true
	})
	r.required(present, "requestId", "nodeId", "ts")
	r.id(present, key, "requestId", req.RequestID)
	r.validID(present, "nodeId", req.NodeID)
	r.check(req.NodeMeta.check())
	if !present["isRepair"] {
		st.repairUnknown[req.RequestID] = true
	}
	req.Extra = r.extra
	st.Pending = append(st.Pending, req)
}

func readPaired(key string, value jvalue, st *LegacyState, p *problems) {
	r := &record{file: PairedFile, path: memberPath(key), p: p, unknown: &st.Unknown}
	if !r.wantRecord(value) {
		return
	}
	var n Node
	var tokenIsString bool
	present := r.fields(value, &n.NodeMeta, func(name string, v jvalue) bool {
		switch name {
		case "nodeId":
			r.str(name, v, &n.NodeID)
		case "token":
			// Its emptiness is judged only when it is a string (a number
			// gets its own problem).
			tokenIsString = v.kind == jString
			r.str(name, v, &n.Token)
		case "createdAtMs":
			r.integer(name, v, &n.CreatedAtMs)
		case "approvedAtMs":
			r.integer(name, v, &n.ApprovedAtMs)
		case "lastConnectedAtMs":
			r.integer(name, v, &n.LastConnectedAtMs)
		case "bins":
			r.strings(name, v, &n.Bins)
		default:
			return false
		}
		return true
	})
	r.required(present, "nodeId", "token", "createdAtMs", "approvedAtMs")
	r.id(present, key, "nodeId", n.NodeID)
	if tokenIsString && n.Token == "" {
		p.add(PairedFile, r.path+".token", "empty; a paired node needs its token")
	}
	r.check(checkString("token", n.Token))
	r.check(n.NodeMeta.check())
	r.check(checkList("bins", n.Bins))
	n.Extra = r.extra
	st.Paired = append(st.Paired, n)
}

func (r *record) wantRecord(v jvalue) bool {
	if v.kind != jObject {
		r.p.add(r.file, r.path, "want a record (object), got %s", v.kind)
		return false
	}
	return true
}

// Legacy writing: records to JSON.stringify(v, null, 2) bytes.

func jstr(s string) jvalue { return jvalue{kind: jString, str: s} }
func jint(n int64) jvalue  { return jvalue{kind: jNumber, num: json.Number(fmt.Sprint(n))} }
func jbool(b bool) jvalue  { return jvalue{kind: jBool, b: b} }
func jlist(items []string) jvalue {
	v := jvalue{kind: jArray}
	for _, s := range items {
		v.arr = append(v.arr, jstr(s))
	}
	return v
}

type jobject struct{ v jvalue }

func (o *jobject) add(name string, v jvalue) {
	o.v.obj = append(o.v.obj, jmember{name: name, value: v})
}

func (o *jobject) str(name, s string) {
	if s != "" {
		o.add(name, jstr(s))
	}
}

func (o *jobject) meta(m NodeMeta) {
	o.str("displayName", m.DisplayName)
	o.str("platform", m.Platform)
	o.str("version", m.Version)
	o.str("coreVersion", m.CoreVersion)
	o.str("uiVersion", m.UIVersion)
	o.str("deviceFamily", m.DeviceFamily)
	o.str("modelIdentifier", m.ModelIdentifier)
	if m.Caps != nil {
		o.add("caps", jlist(m.Caps))
	}
	if m.Commands != nil {
		o.add("commands", jlist(m.Commands))
	}
	if m.Permissions != nil {
		perms := jobject{v: jvalue{kind: jObject}}
		for _, x := range m.Permissions {
			perms.add(x.Name, jbool(x.Granted))
		}
		o.add("permissions", perms.v)
	}
	o.str("remoteIp", m.RemoteIP)
}

func (o *jobject) extra(f Fields) {
	for _, x := range f {
		v, err := parseJSON(x.Value)
		if err != nil {
			continue // stored values were valid JSON when imported
		}
		o.add(x.Name, v)
	}
}

// LegacyPendingJSON renders pending.json.
func LegacyPendingJSON(reqs []PendingRequest) []byte {
	var b bytes.Buffer
	writeLegacyPending(&b, reqs)
	return b.Bytes()
}

// LegacyPairedJSON renders paired.json; with redact every token is "".
func LegacyPairedJSON(nodes []Node, redact bool) []byte {
	var b bytes.Buffer
	writeLegacyPaired(&b, nodes, redact)
	return b.Bytes()
}

// writeLegacyPending writes pending.json: requests in the order OpenClaw
// added them (by ts, then id), array-index ids first as in JavaScript.
func writeLegacyPending(w textWriter, reqs []PendingRequest) {
	sorted := slices.Clone(reqs)
	slices.SortFunc(sorted, func(a, b PendingRequest) int {
		if c := jsKeyCompare(a.RequestID, b.RequestID); c != 0 {
			return c
		}
		if a.TS != b.TS {
			return cmpInt(a.TS, b.TS)
		}
		return strings.Compare(a.RequestID, b.RequestID)
	})
	writeObjectStream(w, len(sorted), func(i int) (string, jvalue) {
		r := sorted[i]
		o := jobject{v: jvalue{kind: jObject}}
		o.add("requestId", jstr(r.RequestID))
		o.add("nodeId", jstr(r.NodeID))
		o.meta(r.NodeMeta)
		if r.Silent != nil {
			o.add("silent", jbool(*r.Silent))
		}
		o.add("isRepair", jbool(r.IsRepair))
		o.add("ts", jint(r.TS))
		o.extra(r.Extra)
		return r.RequestID, o.v
	})
}

// writeLegacyPaired writes paired.json: nodes in the order OpenClaw added
// them (by createdAtMs, then id), array-index ids first as in JavaScript.
func writeLegacyPaired(w textWriter, nodes []Node, redact bool) {
	sorted := slices.Clone(nodes)
	slices.SortFunc(sorted, func(a, b Node) int {
		if c := jsKeyCompare(a.NodeID, b.NodeID); c != 0 {
			return c
		}
		if a.CreatedAtMs != b.CreatedAtMs {
			return cmpInt(a.CreatedAtMs, b.CreatedAtMs)
		}
		return strings.Compare(a.NodeID, b.NodeID)
	})
	writeObjectStream(w, len(sorted), func(i int) (string, jvalue) {
		n := sorted[i]
		o := jobject{v: jvalue{kind: jObject}}
		o.add("nodeId", jstr(n.NodeID))
		token := n.Token
		if redact {
			token = ""
		}
		o.add("token", jstr(token))
		o.meta(n.NodeMeta)
		o.add("createdAtMs", jint(n.CreatedAtMs))
		o.add("approvedAtMs", jint(n.ApprovedAtMs))
		if n.Bins != nil {
			o.add("bins", jlist(n.Bins))
		}
		if n.LastConnectedAtMs != 0 {
			o.add("lastConnectedAtMs", jint(n.LastConnectedAtMs))
		}
		o.extra(n.Extra)
		return n.NodeID, o.v
	})
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
