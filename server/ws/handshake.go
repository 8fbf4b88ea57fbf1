package ws

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/internal/loglimit"
	"github.com/pairgate/pairgate/server/rpc"
)

// deviceSignatureWindow is how far signedAt may be from now.
const deviceSignatureWindow = 10 * time.Minute

var connectSchema = rpc.Schema{
	{Name: "minProtocol", Kind: rpc.Int, Required: true},
	{Name: "maxProtocol", Kind: rpc.Int, Required: true},
	{Name: "client", Kind: rpc.Object, Required: true, Sub: rpc.Schema{
		{Name: "id", Kind: rpc.String, Required: true},
		{Name: "displayName", Kind: rpc.String},
		{Name: "version", Kind: rpc.String, Required: true},
		{Name: "buildId", Kind: rpc.String},
		{Name: "platform", Kind: rpc.String, Required: true},
		{Name: "deviceFamily", Kind: rpc.String},
		{Name: "modelIdentifier", Kind: rpc.String},
		{Name: "timeZone", Kind: rpc.String},
		{Name: "mode", Kind: rpc.String, Required: true},
		{Name: "instanceId", Kind: rpc.String},
	}},
	{Name: "caps", Kind: rpc.StringList},
	{Name: "commands", Kind: rpc.StringList},
	// What later node hosts declare about themselves; pairgate keeps none of it.
	{Name: "computerUse", Kind: rpc.Any},
	{Name: "workerRuns", Kind: rpc.Any},
	{Name: "permissions", Kind: rpc.Permissions},
	{Name: "pathEnv", Kind: rpc.AnyString},
	{Name: "role", Kind: rpc.String},
	{Name: "scopes", Kind: rpc.StringList},
	{Name: "device", Kind: rpc.Object, Sub: rpc.Schema{
		{Name: "id", Kind: rpc.String, Required: true},
		{Name: "publicKey", Kind: rpc.String, Required: true},
		{Name: "signature", Kind: rpc.String, Required: true},
		{Name: "signedAt", Kind: rpc.Int, Required: true},
		{Name: "nonce", Kind: rpc.String},
	}},
	{Name: "modelCatalog", Kind: rpc.Any},
	{Name: "auth", Kind: rpc.Object, Sub: rpc.Schema{
		{Name: "token", Kind: rpc.AnyString},
		{Name: "bootstrapToken", Kind: rpc.AnyString},
		{Name: "deviceToken", Kind: rpc.AnyString},
		{Name: "password", Kind: rpc.AnyString},
		{Name: "approvalRuntimeToken", Kind: rpc.AnyString},
		{Name: "agentRuntimeIdentityToken", Kind: rpc.AnyString},
	}},
	{Name: "locale", Kind: rpc.AnyString},
	{Name: "userAgent", Kind: rpc.AnyString},
}

type connectParams struct {
	MinProtocol int `json:"minProtocol"`
	MaxProtocol int `json:"maxProtocol"`
	Client      struct {
		ID              string `json:"id"`
		DisplayName     string `json:"displayName"`
		Version         string `json:"version"`
		Platform        string `json:"platform"`
		DeviceFamily    string `json:"deviceFamily"`
		ModelIdentifier string `json:"modelIdentifier"`
		Mode            string `json:"mode"`
		InstanceID      string `json:"instanceId"`
	} `json:"client"`
	Caps        []string       `json:"caps"`
	Commands    []string       `json:"commands"`
	Permissions db.Permissions `json:"permissions"`
	Role        string         `json:"role"`
	Scopes      []string       `json:"scopes"`
	Device      *deviceParams  `json:"device"`
	Auth        struct {
		Token          string `json:"token"`
		DeviceToken    string `json:"deviceToken"`
		BootstrapToken string `json:"bootstrapToken"`
	} `json:"auth"`
	// Protocol is the negotiated version, set by parseConnect.
	Protocol int `json:"-"`
}

type deviceParams struct {
	ID        string `json:"id"`
	PublicKey string `json:"publicKey"`
	Signature string `json:"signature"`
	SignedAt  int64  `json:"signedAt"`
	Nonce     string `json:"nonce"`
}

// handshakeError is a refused connect: the error to answer with and the
// close code that follows it, with its reason when that is not the
// error's message.
type handshakeError struct {
	err         error
	closeCode   int
	closeReason string
}

func refuse(code int, errCode db.Code, format string, args ...any) *handshakeError {
	return &handshakeError{err: &db.Error{Code: errCode, Message: fmt.Sprintf(format, args...)}, closeCode: code}
}

// parseConnect validates connect params and the protocol range.
func parseConnect(raw json.RawMessage) (connectParams, *handshakeError) {
	var p connectParams
	// Decoded first, as far as it goes, so that even a refusal can say
	// in the log who was refused; the schema then says what was wrong.
	decodeErr := json.Unmarshal(raw, &p)
	if err := connectSchema.Check(raw); err != nil {
		return p, refuse(closePolicy, db.CodeInvalid, "invalid connect params: %s", err)
	}
	if decodeErr != nil {
		return p, refuse(closePolicy, db.CodeInvalid, "invalid connect params: %s", decodeErr)
	}
	if p.Role == "" {
		p.Role = rpc.RoleOperator
	}
	if p.Role != rpc.RoleOperator && p.Role != rpc.RoleNode {
		return p, refuse(closePolicy, db.CodeInvalid, "invalid connect params: at /role: must be equal to one of the allowed values")
	}
	p.Protocol = min(p.MaxProtocol, maxProtocolVersion)
	if p.Protocol < max(p.MinProtocol, minProtocolVersion) {
		return p, &handshakeError{closeCode: closeProtocol, err: &db.Error{Code: db.CodeInvalid, Message: "protocol mismatch",
			Details: protocolMismatch{
				Code: "PROTOCOL_MISMATCH", ClientMinProtocol: p.MinProtocol, ClientMaxProtocol: p.MaxProtocol,
				ExpectedProtocol: expectedProtocol(p.MinProtocol), MinimumProbeProtocol: minProtocolVersion,
			}}}
	}
	return p, nil
}

// protocolMismatch is the details of a protocol mismatch, in upstream's shape.
type protocolMismatch struct {
	Code                 string `json:"code"`
	ClientMinProtocol    int    `json:"clientMinProtocol"`
	ClientMaxProtocol    int    `json:"clientMaxProtocol"`
	ExpectedProtocol     int    `json:"expectedProtocol"`
	MinimumProbeProtocol int    `json:"minimumProbeProtocol"`
}

// expectedProtocol is the version a refused client is told to retry
// with: 3 unless it asks for more than pairgate serves. OpenClaw's node
// hosts fall back to protocol 3 only when told exactly 3 (and 2026.5.x
// clients read nothing but expectedProtocol).
func expectedProtocol(clientMin int) int {
	if clientMin > maxProtocolVersion {
		return maxProtocolVersion
	}
	return minProtocolVersion
}

// signaturePayloads are the strings a device may have signed, newest
// first. v3 (OpenClaw 2026.2.26 on) adds the client's platform and device
// family; v2 binds the challenge nonce; a client that got no challenge
// signs v1, without it, and is then bound only by signedAt. The token
// signed is auth.token; without one, OpenClaw's clients sign the device
// or bootstrap token they send (releases differ), else nothing.
func signaturePayloads(p connectParams) []string {
	tokens := []string{p.Auth.Token}
	if p.Auth.Token == "" {
		tokens = nil
		for _, t := range []string{p.Auth.DeviceToken, p.Auth.BootstrapToken} {
			if t != "" {
				tokens = append(tokens, t)
			}
		}
		if tokens == nil {
			tokens = []string{""}
		}
	}
	var out []string
	for _, token := range tokens {
		fields := []string{
			"", p.Device.ID, p.Client.ID, p.Client.Mode, p.Role, strings.Join(p.Scopes, ","),
			strconv.FormatInt(p.Device.SignedAt, 10), token,
		}
		join := func(version string, more ...string) string {
			fields[0] = version
			return strings.Join(append(slices.Clone(fields), more...), "|")
		}
		if p.Device.Nonce == "" {
			out = append(out, join("v1"))
			continue
		}
		out = append(out,
			join("v3", p.Device.Nonce, signedMetadata(p.Client.Platform), signedMetadata(p.Client.DeviceFamily)),
			join("v2", p.Device.Nonce))
	}
	return out
}

// signedMetadata is a client field as v3 signs it: trimmed, with ASCII
// capitals lowered (other letters stay as they are).
func signedMetadata(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, strings.TrimSpace(s))
}

// verifyDevice checks a device identity: the id is the SHA-256 of the
// public key, the signature is fresh, bound to this connection's challenge,
// and valid for the v1, v2 or v3 payload.
func verifyDevice(p connectParams, challenge string, now time.Time, window time.Duration) *handshakeError {
	d := p.Device
	pub, err := decodeB64URL(d.PublicKey)
	sum := sha256.Sum256(pub)
	if err != nil || len(pub) != ed25519.PublicKeySize || hex.EncodeToString(sum[:]) != d.ID {
		return refuse(closePolicy, db.CodeUnauthorized, "device identity mismatch")
	}
	if age := now.Sub(time.UnixMilli(d.SignedAt)); age > window || age < -window {
		return refuse(closePolicy, db.CodeUnauthorized, "device signature expired")
	}
	if d.Nonce != "" && d.Nonce != challenge {
		return refuse(closePolicy, db.CodeUnauthorized, "device nonce mismatch")
	}
	sig, err := decodeB64URL(d.Signature)
	if err == nil && slices.ContainsFunc(signaturePayloads(p), func(payload string) bool {
		return ed25519.Verify(pub, []byte(payload), sig)
	}) {
		return nil
	}
	return refuse(closePolicy, db.CodeUnauthorized, "device signature invalid")
}

// firstUse refuses a v1 signature (no challenge bound) that already
// opened a connection: see seenSignatures.
func (t *Transport) firstUse(d *deviceParams, remoteIP string) *handshakeError {
	now := t.o.Now()
	fresh, full := t.seenV1.first(remoteIP, d.ID, d.Signature, time.UnixMilli(d.SignedAt).Add(t.o.DeviceWindow), now)
	switch {
	case full:
		return refuse(closeTryAgain, db.CodeUnavailable, "too many device signatures without a challenge to check; sign the connect.challenge nonce, or retry later")
	case !fresh:
		return refuse(closePolicy, db.CodeUnauthorized, "device signature already used: sign each connect anew (the connect.challenge nonce binds it to its connection)")
	}
	return nil
}

// decodeB64URL accepts base64url with or without padding.
func decodeB64URL(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// authenticate turns valid connect params into a session, or refuses.
// A node paired by its device key also gets its token for hello-ok.
//
// A connect that opens a new request takes its place among the unpaired
// sessions first (reserved: the caller gives it back unless the session
// opens unpaired), so that connects racing for the last places cannot
// each open a request and then be turned away (a re-test: 60 at once
// against 47 places opened 60 requests).
func (t *Transport) authenticate(ctx context.Context, p *rpc.Profile, cp connectParams, remoteIP string, reserved *bool) (rpc.Session, *helloAuth, *handshakeError) {
	sess := rpc.Session{Profile: p, Role: cp.Role, RemoteIP: remoteIP, Actor: "ws"}
	// A legacy node presents the operator token. While this address is
	// locked out of the operator token, or of node tokens, that token
	// proves nothing on a node's connect: it is judged as a node token
	// (and fails as one, or meets the lockout), so that a right guess
	// answers as a wrong one does. (Locked out of node tokens only, an
	// outside attack had every wrong guess refused uncounted and the
	// right one let in: unlimited guesses of the operator token.)
	operatorToken := cp.Auth.Token != "" && p.Authorized(cp.Auth.Token)
	if cp.Role == rpc.RoleNode {
		_, opLocked := t.o.Guard.Locked(p.Name, rpc.ClassOperator, remoteIP)
		_, nodeLocked := t.o.Guard.Locked(p.Name, rpc.ClassNode, remoteIP)
		if opLocked || nodeLocked {
			operatorToken = false
		}
	}
	// The class the presented credential is limited in: a node's token, or
	// the operator token.
	class := rpc.ClassOperator
	nodeToken := cp.Role == rpc.RoleNode && (cp.Auth.Token != "" && !operatorToken || cp.Auth.DeviceToken != "")
	if nodeToken {
		class = rpc.ClassNode
	}
	if cp.Role == rpc.RoleOperator || cp.Auth.Token != "" || cp.Auth.DeviceToken != "" {
		if retry, locked := t.o.Guard.Locked(p.Name, class, remoteIP); locked {
			return sess, nil, refuse(closePolicy, db.CodeRateLimited, "unauthorized: too many failed attempts; retry in %ds", int(retry.Seconds()))
		}
	}
	if cp.Role == rpc.RoleOperator {
		if !p.Authorized(cp.Auth.Token) {
			t.o.Guard.Failed(p.Name, rpc.ClassOperator, remoteIP)
			return sess, nil, refuse(closePolicy, db.CodeUnauthorized, "unauthorized: gateway token mismatch")
		}
		sess.Scopes = cp.Scopes
		if len(sess.Scopes) == 0 {
			sess.Scopes = []string{rpc.ScopeAdmin}
		}
		return sess, nil, nil
	}

	// A node: its identity is its verified device.
	if cp.Device == nil {
		return sess, nil, refuse(closePolicy, db.CodeUnauthorized, "unauthorized: a node must present its device identity")
	}
	sess.NodeID = cp.Device.ID
	sess.Actor = "node"
	sess.Node = db.NodeMeta{
		DisplayName: cp.Client.DisplayName, Platform: cp.Client.Platform, Version: cp.Client.Version,
		DeviceFamily: cp.Client.DeviceFamily, ModelIdentifier: cp.Client.ModelIdentifier,
		Caps: cp.Caps, Commands: cp.Commands, Permissions: cp.Permissions,
	}
	if operatorToken {
		// (legacy) OpenClaw nodes connect with the gateway token; a holder
		// of the operator token is trusted as the node it says it is.
		_, err := p.Store.Node(ctx, sess.NodeID)
		sess.Paired = err == nil
		if sess.Paired {
			if err := p.Store.MarkConnected(ctx, sess.NodeID, remoteIP, sess.Origin()); err != nil {
				return sess, nil, &handshakeError{err: err, closeCode: closeTryAgain}
			}
		}
		return sess, nil, nil
	}
	meta := sess.Node
	meta.RemoteIP = remoteIP
	key := cp.Device.PublicKey
	if cp.Device.Nonce == "" {
		// A v1 signature binds no challenge: replayed within the window it
		// would still verify. It proves the device, but its key is
		// neither pinned nor handed the token.
		key = ""
	}
	// A new request opened at connect spends from the request rates, as
	// a node's node.pair.request does.
	adm, err := p.Store.AdmitNode(ctx, db.NodeConnect{
		NodeID: sess.NodeID, PublicKey: key,
		Tokens: []string{cp.Auth.Token, cp.Auth.DeviceToken}, NodeMeta: meta,
		Admit: func() error {
			// Asked again if the transaction is retried: one place.
			if !*reserved {
				if !t.reserveUnpaired() {
					return t.unpairedFull()
				}
				*reserved = true
			}
			return t.o.Guard.Admit(&sess)
		},
	}, sess.Origin())
	if err != nil {
		return sess, nil, &handshakeError{err: err, closeCode: closeTryAgain}
	}
	switch {
	case adm.Mismatch:
		// A token that does not verify (removed, or replaced by a later
		// approval): refused, and asked to pair again, as OpenClaw does.
		t.o.Guard.Failed(p.Name, rpc.ClassNode, remoteIP)
		return sess, nil, pairingRequired(*adm.Request)
	case adm.Paired:
		sess.Paired, sess.TokenDigest = true, adm.TokenDigest
		if adm.Token != "" {
			return sess, &helloAuth{DeviceToken: adm.Token, Role: rpc.RoleNode, Scopes: []string{}, IssuedAtMs: adm.IssuedAtMs}, nil
		}
	default:
		// Held open as a pairing session until its request is decided:
		// on approval it is closed 1012, and the node's reconnect gets
		// its token. Not a v1 signer: its reconnect could not collect the
		// token, so it stays, and learns of the approval only by asking
		// with node.pair.request. A client that asks so itself completes
		// the request its connect opened.
		if key != "" {
			sess.PendingRequest = adm.Request.RequestID
		}
		if adm.Created {
			sess.OpenedRequest = adm.Request.RequestID
			t.o.Log.Info("node asks to pair at connect", "profile", p.Name, "remote", remoteIP,
				"node", sess.NodeID, "requestId", adm.Request.RequestID, "repair", adm.Request.IsRepair,
				"client", loglimit.Value(cp.Client.ID), "version", loglimit.Value(cp.Client.Version))
		}
	}
	return sess, nil, nil
}

// pairingRequired is the refusal of a node that must be approved (again),
// in OpenClaw 2026.9's shape.
func pairingRequired(req db.PendingRequest) *handshakeError {
	const message = "pairing required: device is not approved yet"
	return &handshakeError{
		err: &db.Error{Code: db.CodeNotPaired, Message: message, Details: map[string]any{
			"code": "PAIRING_REQUIRED", "reason": "not-paired", "requestId": req.RequestID, "deviceId": req.NodeID,
			"requestedRole": rpc.RoleNode, "requestedScopes": []string{},
		}},
		closeCode:   closePolicy,
		closeReason: message + " (requestId: " + req.RequestID + ")",
	}
}
