// Package client is the Go client of circlegate: dial a tenant over WebSocket,
// authenticate with a secp256k1 private key, call methods singly or in batches, and
// receive server notifications.
//
// Concurrency: a Client is safe for concurrent use; calls may be made from many
// goroutines and their replies are matched by id.
package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/circlegate/circlegate/tenant"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/gorilla/websocket"
)

// Error is a JSON-RPC error returned by the server.
type Error struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

func (e *Error) Error() string { return fmt.Sprintf("rpc error %d: %s", e.Code, e.Message) }

// Notification is a server-to-client message without an id (an event, for example).
type Notification struct {
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

// ErrClosed is returned by calls on a closed client.
var ErrClosed = errors.New("client: connection closed")

type response struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *Error          `json:"error"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

// Client is one WebSocket connection to one tenant.
type Client struct {
	conn   *websocket.Conn
	wmu    sync.Mutex
	mu     sync.Mutex
	calls  map[string]chan *response
	nextID atomic.Uint64
	notes  chan Notification
	done   chan struct{}
	quit   chan struct{} // closed by Close: the reader stops delivering
	once   sync.Once
	err    error
}

// Option changes how Dial connects.
type Option func(*dialOptions)

type dialOptions struct {
	token  string
	header http.Header
	buffer int
	dialer *websocket.Dialer
}

// WithToken authenticates the connection at upgrade with a bearer token.
func WithToken(token string) Option { return func(o *dialOptions) { o.token = token } }

// WithHeader adds HTTP headers to the upgrade request.
func WithHeader(h http.Header) Option { return func(o *dialOptions) { o.header = h } }

// WithNotificationBuffer sets how many notifications may wait unread before the
// client stops reading (and the server, seeing a slow reader, may close it). Default 256.
func WithNotificationBuffer(n int) Option { return func(o *dialOptions) { o.buffer = n } }

// WithDialer uses d (for example with a local address or TLS config) to connect.
func WithDialer(d *websocket.Dialer) Option { return func(o *dialOptions) { o.dialer = d } }

// Dial connects to a tenant URL such as ws://127.0.0.1:8080/<tenant_pk>.
func Dial(ctx context.Context, rawURL string, opts ...Option) (*Client, error) {
	o := dialOptions{buffer: 256, dialer: websocket.DefaultDialer}
	for _, f := range opts {
		f(&o)
	}
	if o.token != "" {
		u, err := url.Parse(rawURL)
		if err != nil {
			return nil, err
		}
		q := u.Query()
		q.Set("token", o.token)
		u.RawQuery = q.Encode()
		rawURL = u.String()
	}
	conn, resp, err := o.dialer.DialContext(ctx, rawURL, o.header)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("client: dial %s: HTTP %d: %w", rawURL, resp.StatusCode, err)
		}
		return nil, fmt.Errorf("client: dial %s: %w", rawURL, err)
	}
	c := &Client{conn: conn, calls: make(map[string]chan *response), notes: make(chan Notification, o.buffer), done: make(chan struct{}), quit: make(chan struct{})}
	go c.read()
	return c, nil
}

func (c *Client) read() {
	defer close(c.done)
	for {
		_, msg, err := c.conn.ReadMessage()
		if err != nil {
			c.fail(err)
			return
		}
		msg = bytes.TrimSpace(msg)
		if len(msg) > 0 && msg[0] == '[' {
			var batch []*response
			if err := json.Unmarshal(msg, &batch); err != nil {
				c.fail(fmt.Errorf("client: bad batch reply: %w", err))
				return
			}
			for _, r := range batch {
				c.deliver(r)
			}
			continue
		}
		var r response
		if err := json.Unmarshal(msg, &r); err != nil {
			c.fail(fmt.Errorf("client: bad reply: %w", err))
			return
		}
		if r.ID == nil && r.Method != "" {
			select {
			case c.notes <- Notification{Method: r.Method, Params: r.Params}:
			case <-c.quit:
				c.fail(ErrClosed)
				return
			}
			continue
		}
		c.deliver(&r)
	}
}

func (c *Client) deliver(r *response) {
	c.mu.Lock()
	ch, ok := c.calls[string(r.ID)]
	delete(c.calls, string(r.ID))
	c.mu.Unlock()
	if ok {
		ch <- r
	}
}

func (c *Client) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			c.err = &CloseError{Code: ce.Code, Reason: ce.Text}
		} else {
			c.err = err
		}
	}
	c.calls = nil
	c.mu.Unlock()
	c.conn.Close()
}

// CloseError tells why the server closed the connection.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	return "client: closed by server: " + strconv.Itoa(e.Code) + " " + e.Reason
}

// Err returns why the connection ended (a *CloseError when the server sent a close
// frame), or nil while it is open.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Done is closed when the connection has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// Notifications delivers the server's notifications in order.
func (c *Client) Notifications() <-chan Notification { return c.notes }

// Close closes the connection with a normal close frame, waiting a moment for the
// server's reply.
func (c *Client) Close() error {
	c.once.Do(func() {
		c.wmu.Lock()
		_ = c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		c.wmu.Unlock()
		c.fail(ErrClosed)
		close(c.quit)
	})
	select {
	case <-c.done:
	case <-time.After(time.Second):
		_ = c.conn.Close()
		<-c.done
	}
	return nil
}

func (c *Client) register(id string) (chan *response, error) {
	ch := make(chan *response, 1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls == nil {
		if c.err != nil {
			return nil, c.err
		}
		return nil, ErrClosed
	}
	c.calls[id] = ch
	return ch, nil
}

func (c *Client) forget(id string) {
	c.mu.Lock()
	delete(c.calls, id)
	c.mu.Unlock()
}

func (c *Client) write(msg []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.conn.WriteMessage(websocket.TextMessage, msg)
}

type request struct {
	JSONRPC string `json:"jsonrpc"`
	ID      uint64 `json:"id,omitempty"`
	Method  string `json:"method"`
	Params  any    `json:"params,omitempty"`
}

// Call invokes method with params (any JSON-encodable value, or nil) and decodes the
// result into result (nil to discard). A server error is returned as *Error.
func (c *Client) Call(ctx context.Context, method string, params, result any) error {
	id := c.nextID.Add(1)
	msg, err := json.Marshal(request{JSONRPC: "2.0", ID: id, Method: method, Params: params})
	if err != nil {
		return err
	}
	key := strconv.FormatUint(id, 10)
	ch, err := c.register(key)
	if err != nil {
		return err
	}
	if err := c.write(msg); err != nil {
		c.forget(key)
		return err
	}
	return c.await(ctx, key, ch, result)
}

func (c *Client) await(ctx context.Context, key string, ch chan *response, result any) error {
	select {
	case r := <-ch:
		return decode(r, result)
	case <-ctx.Done():
		c.forget(key)
		return ctx.Err()
	case <-c.done:
		select {
		case r := <-ch:
			return decode(r, result)
		default:
		}
		if err := c.Err(); err != nil {
			return err
		}
		return ErrClosed
	}
}

func decode(r *response, result any) error {
	if r.Error != nil {
		return r.Error
	}
	if result == nil {
		return nil
	}
	return json.Unmarshal(r.Result, result)
}

// Notify sends a notification: a call without an id, which gets no reply.
func (c *Client) Notify(method string, params any) error {
	msg, err := json.Marshal(request{JSONRPC: "2.0", Method: method, Params: params})
	if err != nil {
		return err
	}
	return c.write(msg)
}

// BatchCall is one call of a batch; Result is decoded into and Error set on return.
type BatchCall struct {
	Method string
	Params any
	Result any
	Error  error
}

// Batch sends calls as one JSON-RPC batch and fills in each call's result or error.
// The returned error is for the batch as a whole (transport, or a batch-level error).
func (c *Client) Batch(ctx context.Context, calls []BatchCall) error {
	reqs := make([]request, len(calls))
	keys := make([]string, len(calls))
	chans := make([]chan *response, len(calls))
	for i, bc := range calls {
		id := c.nextID.Add(1)
		reqs[i] = request{JSONRPC: "2.0", ID: id, Method: bc.Method, Params: bc.Params}
		keys[i] = strconv.FormatUint(id, 10)
		ch, err := c.register(keys[i])
		if err != nil {
			return err
		}
		chans[i] = ch
	}
	msg, err := json.Marshal(reqs)
	if err != nil {
		return err
	}
	if err := c.write(msg); err != nil {
		return err
	}
	for i := range calls {
		if err := c.await(ctx, keys[i], chans[i], calls[i].Result); err != nil {
			var rpcErr *Error
			if !errors.As(err, &rpcErr) {
				return err
			}
			calls[i].Error = err
		}
	}
	return nil
}

// AuthResult is the result of authenticate.
type AuthResult struct {
	Authenticated bool   `json:"authenticated"`
	Token         string `json:"token"`
	ExpiresAt     int64  `json:"expiresAt"`
	Role          string `json:"role"`
}

// Authenticate runs fetch_nonce and authenticate with priv.
func (c *Client) Authenticate(ctx context.Context, priv *secp256k1.PrivateKey) (AuthResult, error) {
	pub := tenant.PubKeyHex(priv.PubKey())
	var n struct {
		Nonce string `json:"nonce"`
	}
	if err := c.Call(ctx, "fetch_nonce", map[string]string{"pubkey": pub}, &n); err != nil {
		return AuthResult{}, err
	}
	sig := tenant.SignPersonal(priv, []byte(n.Nonce))
	var res AuthResult
	err := c.Call(ctx, "authenticate", map[string]string{"pubkey": pub, "signature": sig, "nonce": n.Nonce}, &res)
	return res, err
}

// ParsePrivateKey parses a 32-byte secp256k1 private key as hex, 0x optional.
func ParsePrivateKey(s string) (*secp256k1.PrivateKey, error) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		return nil, errors.New("private key must be 32 bytes of hex")
	}
	return secp256k1.PrivKeyFromBytes(b), nil
}
