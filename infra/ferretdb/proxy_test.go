package main

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"

	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"
	"go.mongodb.org/mongo-driver/x/mongo/driver/wiremessage"
)

func collation(locale string) bsoncore.Document {
	return bsoncore.NewDocumentBuilder().AppendString("locale", locale).Build()
}

// findCmd is a Trino-style find; a nil coll means no collation field at all.
func findCmd(coll bsoncore.Document) bsoncore.Document {
	b := bsoncore.NewDocumentBuilder().
		AppendString("find", "images").
		AppendDocument("filter", bsoncore.NewDocumentBuilder().AppendInt64("n", 7).Build())
	if coll != nil {
		b.AppendDocument("collation", coll)
	}
	return b.AppendString("$db", "lake").Build()
}

// opMsg frames cmd as an OP_MSG with a trailing kind-1 section, plus a valid
// CRC-32C when checksum is set.
func opMsg(cmd bsoncore.Document, checksum bool) []byte {
	var flags wiremessage.MsgFlag
	if checksum {
		flags = wiremessage.ChecksumPresent
	}
	idx, b := wiremessage.AppendHeaderStart(nil, 42, 0, wiremessage.OpMsg)
	b = wiremessage.AppendMsgFlags(b, flags)
	b = wiremessage.AppendMsgSectionType(b, wiremessage.SingleDocument)
	b = append(b, cmd...)
	b = wiremessage.AppendMsgSectionType(b, wiremessage.DocumentSequence)
	seqIdx, b := bsoncore.ReserveLength(b)
	b = append(b, "documents\x00"...)
	b = append(b, bsoncore.NewDocumentBuilder().AppendInt32("x", 1).Build()...)
	b = append(b, bsoncore.NewDocumentBuilder().AppendInt32("x", 2).Build()...)
	b = bsoncore.UpdateLength(b, seqIdx, int32(len(b[seqIdx:])))
	n := len(b)
	if checksum {
		n += 4
	}
	binary.LittleEndian.PutUint32(b[idx:], uint32(n))
	if checksum {
		b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	}
	return b
}

func TestStripSimpleCollation(t *testing.T) {
	for _, checksum := range []bool{false, true} {
		in := opMsg(findCmd(collation("simple")), checksum)
		orig := bytes.Clone(in)
		out, command, changed := stripSimpleCollation(in)
		if !changed || command != "find" {
			t.Fatalf("checksum=%v: changed=%v command=%q", checksum, changed, command)
		}
		if !bytes.Equal(in, orig) {
			t.Fatal("input was modified in place")
		}
		// The result must be exactly what a client would have sent without the field,
		// which also checks the length prefix, the kind-1 section and the checksum.
		if want := opMsg(findCmd(nil), checksum); !bytes.Equal(out, want) {
			t.Fatalf("checksum=%v:\n got %x\nwant %x", checksum, out, want)
		}
	}
}

func TestOtherMessagesUntouched(t *testing.T) {
	opQuery := bytes.Clone(opMsg(findCmd(collation("simple")), false))
	binary.LittleEndian.PutUint32(opQuery[12:], uint32(wiremessage.OpQuery))

	cases := map[string][]byte{
		"no collation":       opMsg(findCmd(nil), false),
		"other collation":    opMsg(findCmd(collation("fr")), true),
		"simple plus option": opMsg(findCmd(bsoncore.NewDocumentBuilder().AppendString("locale", "simple").AppendInt32("strength", 1).Build()), false),
		"not OP_MSG":         opQuery,
		"truncated":          opMsg(findCmd(collation("simple")), false)[:30],
	}
	for name, in := range cases {
		out, _, changed := stripSimpleCollation(in)
		if changed || !bytes.Equal(out, in) {
			t.Errorf("%s: message was rewritten", name)
		}
	}
}
