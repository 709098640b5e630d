package tfevents

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// headerLen is the uint64 length and its uint32 CRC before a record's data; a uint32 CRC follows it.
const headerLen, footerLen = 12, 4

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// maskedCRC is TFRecord's checksum. The mask exists because a CRC of data that itself holds
// CRCs is weak; TensorFlow's reader compares masked values, so the exact constant matters.
func maskedCRC(b []byte) uint32 {
	c := crc32.Checksum(b, castagnoli)
	return (c>>15 | c<<17) + 0xa282ead8
}

// appendRecord frames data as one TFRecord, so that a single write puts the whole record down.
func appendRecord(dst, data []byte) []byte {
	var h [headerLen]byte
	binary.LittleEndian.PutUint64(h[:8], uint64(len(data)))
	binary.LittleEndian.PutUint32(h[8:], maskedCRC(h[:8]))
	dst = append(dst, h[:]...)
	dst = append(dst, data...)
	return binary.LittleEndian.AppendUint32(dst, maskedCRC(data))
}

// record is one verified TFRecord of a file: off is where it starts, raw the whole framed
// record (kept byte for byte when a file is rewritten), data its Event proto.
type record struct {
	off  int64
	raw  []byte
	data []byte
}

// splitRecords checks the CRCs of every record in b. A damaged record is dropped (torn is set)
// only when it is the last thing in the file, the trace of a write cut short; anywhere else it
// is an error naming the file and offset, as dropping it would silently lose later records
// (the records before it are returned with the error).
func splitRecords(path string, b []byte) (recs []record, torn bool, err error) {
	for off := 0; off < len(b); {
		rest := b[off:]
		if len(rest) < headerLen {
			return recs, true, nil
		}
		if maskedCRC(rest[:8]) != binary.LittleEndian.Uint32(rest[8:headerLen]) {
			// Without a valid length the record's end is unknown. Zeros to the end of the file
			// are what a crash leaves where the last write's blocks were not yet written.
			if allZero(rest) {
				return recs, true, nil
			}
			return recs, false, fmt.Errorf("tfevents: %s: bad length checksum of the record at byte %d", path, off)
		}
		n := binary.LittleEndian.Uint64(rest[:8])
		if uint64(len(rest)-headerLen) < footerLen || n > uint64(len(rest)-headerLen-footerLen) {
			return recs, true, nil // the length is valid, the data or its CRC was not all written
		}
		end := headerLen + int(n) + footerLen
		data := rest[headerLen : headerLen+int(n)]
		if maskedCRC(data) != binary.LittleEndian.Uint32(rest[headerLen+int(n):end]) {
			if end == len(rest) {
				return recs, true, nil
			}
			return recs, false, fmt.Errorf("tfevents: %s: bad data checksum of the record at byte %d", path, off)
		}
		recs = append(recs, record{off: int64(off), raw: rest[:end], data: data})
		off += end
	}
	return recs, false, nil
}

func allZero(b []byte) bool {
	return len(bytes.TrimLeft(b, "\x00")) == 0
}
