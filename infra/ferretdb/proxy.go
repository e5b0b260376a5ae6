package main

// The wire proxy in front of FerretDB. Trino's MongoDB connector attaches
// `collation: {locale: "simple"}` to its reads and offers no way to turn that off
// (trinodb/trino#15911), while FerretDB v1 rejects any `collation` field with
// code 238 (NotImplemented). "simple" is MongoDB's default binary comparison,
// which is what FerretDB does anyway, so dropping exactly that value is
// semantics-preserving. Everything else, including other collations (which
// FerretDB must keep rejecting loudly), goes through byte-for-byte.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net"
	"sync"

	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"
	"go.mongodb.org/mongo-driver/x/mongo/driver/wiremessage"
)

// maxMsgLen is the maxMessageSizeBytes FerretDB advertises in hello; a client
// announcing more is broken or hostile, so we drop it instead of buffering it.
const maxMsgLen = 48_000_000

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// stripSimpleCollation rewrites one complete client->server wire message. It
// returns the message unchanged (changed=false) unless it is an OP_MSG whose
// command document (the kind-0 section) has collation {locale: "simple"}; then
// it returns a re-framed copy without that field and the command's name.
// Malformed input is returned unchanged so FerretDB reports the error itself.
func stripSimpleCollation(msg []byte) (out []byte, command string, changed bool) {
	_, reqID, respTo, op, rest, ok := wiremessage.ReadHeader(msg)
	if !ok || op != wiremessage.OpMsg {
		return msg, "", false // OP_QUERY (legacy handshake), OP_COMPRESSED, ...
	}
	flags, rest, ok := wiremessage.ReadMsgFlags(rest)
	if !ok {
		return msg, "", false
	}
	checksum := flags&wiremessage.ChecksumPresent != 0
	if checksum {
		if len(rest) < 4 {
			return msg, "", false
		}
		rest = rest[:len(rest)-4] // recomputed below
	}

	idx, out := wiremessage.AppendHeaderStart(make([]byte, 0, len(msg)), reqID, respTo, op)
	out = wiremessage.AppendMsgFlags(out, flags)
	for len(rest) > 0 {
		var stype wiremessage.SectionType
		stype, rest, _ = wiremessage.ReadMsgSectionType(rest)
		out = wiremessage.AppendMsgSectionType(out, stype)
		switch stype {
		case wiremessage.SingleDocument:
			var doc bsoncore.Document
			if doc, rest, ok = wiremessage.ReadMsgSectionSingleDocument(rest); !ok {
				return msg, "", false
			}
			if stripped, ok := withoutSimpleCollation(doc); ok {
				doc, changed = stripped, true
				if e, err := doc.IndexErr(0); err == nil {
					command = e.Key()
				}
			}
			out = append(out, doc...)
		case wiremessage.DocumentSequence:
			// Bulk payloads (insert's "documents", update's "updates", ...): copied as is.
			_, _, next, ok := wiremessage.ReadMsgSectionRawDocumentSequence(rest)
			if !ok {
				return msg, "", false
			}
			out = append(out, rest[:len(rest)-len(next)]...)
			rest = next
		default:
			return msg, "", false
		}
	}
	if !changed {
		return msg, "", false
	}

	length := len(out)
	if checksum {
		length += 4
	}
	binary.LittleEndian.PutUint32(out[idx:], uint32(length))
	if checksum {
		// CRC-32C over everything before the checksum, as the OP_MSG spec says.
		out = binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, castagnoli))
	}
	return out, command, true
}

// withoutSimpleCollation returns doc minus a top-level collation field that is
// exactly {locale: "simple"}; ok is false if there is no such field.
func withoutSimpleCollation(doc bsoncore.Document) (bsoncore.Document, bool) {
	elems, err := doc.Elements()
	if err != nil {
		return nil, false
	}
	kept := make([][]byte, 0, len(elems))
	found := false
	for _, e := range elems {
		if e.Key() == "collation" && isSimpleCollation(e.Value()) {
			found = true
			continue
		}
		kept = append(kept, e)
	}
	if !found {
		return nil, false
	}
	return bsoncore.BuildDocument(nil, kept...), true
}

func isSimpleCollation(v bsoncore.Value) bool {
	d, ok := v.DocumentOK()
	if !ok {
		return false
	}
	elems, err := d.Elements()
	if err != nil || len(elems) != 1 || elems[0].Key() != "locale" {
		return false
	}
	s, ok := elems[0].Value().StringValueOK()
	return ok && s == "simple"
}

// proxy accepts MongoDB clients on ln and connects each one to FerretDB via dial.
type proxy struct {
	dial   func(ctx context.Context) (net.Conn, error)
	logger *slog.Logger

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// serve blocks until ctx is canceled or accepting fails, then closes ln and every
// open connection (clients see a dropped connection and retry, as with a mongod
// shutdown).
func (p *proxy) serve(ctx context.Context, ln net.Listener) error {
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p.conns = map[net.Conn]struct{}{}
	go func() {
		<-ctx.Done()
		ln.Close()
		p.mu.Lock()
		for c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
	}()

	var err error
	for {
		var client net.Conn
		if client, err = ln.Accept(); err != nil {
			break
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.handle(ctx, client)
		}()
	}
	cancel()
	p.wg.Wait()
	if parent.Err() != nil {
		return nil // asked to stop; the Accept error is just the closed listener
	}
	return err
}

// track registers c for shutdown; false if shutdown already began.
func (p *proxy) track(ctx context.Context, c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ctx.Err() != nil {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *proxy) handle(ctx context.Context, client net.Conn) {
	defer p.untrack(client)
	if !p.track(ctx, client) {
		return
	}
	server, err := p.dial(ctx)
	if err != nil {
		p.logger.Error("cannot reach FerretDB", "error", err)
		return
	}
	defer p.untrack(server)
	if !p.track(ctx, server) {
		return
	}

	// Replies are never rewritten; closing both ends when either direction stops
	// unblocks the other copy (the protocol has no use for half-closed sockets).
	go func() {
		io.Copy(client, server)
		client.Close()
		server.Close()
	}()
	if err := p.forward(server, client); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		p.logger.Debug("client connection ended", "remote", client.RemoteAddr().String(), "error", err)
	}
}

// forward copies whole wire messages from client to server, rewriting as needed.
// Messages must be buffered whole because the length prefix changes on rewrite.
func (p *proxy) forward(server io.Writer, client io.Reader) error {
	r := bufio.NewReaderSize(client, 64<<10)
	var buf []byte
	for {
		var head [4]byte
		if _, err := io.ReadFull(r, head[:]); err != nil {
			return err
		}
		n := int(int32(binary.LittleEndian.Uint32(head[:])))
		if n < 16 || n > maxMsgLen {
			return fmt.Errorf("bad wire message length %d", n)
		}
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		copy(buf, head[:])
		if _, err := io.ReadFull(r, buf[4:]); err != nil {
			return err
		}
		msg, command, changed := stripSimpleCollation(buf)
		if changed {
			p.logger.Debug("stripped collation {locale: \"simple\"}", "command", command)
		}
		if _, err := server.Write(msg); err != nil {
			return err
		}
	}
}
