package remoting

import (
	"bytes"
	"encoding/binary"
	"errors"
)

// RecordFields holds the fields of a stored MessageExt record that stores
// and indexes need, sliced from the record without allocating.
type RecordFields struct {
	Topic          []byte
	QueueID        int32
	QueueOffset    int64
	StoreTimestamp int64
	Properties     []byte
}

// ErrBadRecord: a record's fields are inconsistent with its size.
var ErrBadRecord = errors.New("remoting: inconsistent record fields")

// StoreTimestampPos returns the byte position of STORETIMESTAMP in a record with
// the given SYSFLAG.
func StoreTimestampPos(sysFlag int32) int {
	if sysFlag&SysFlagBornHostV6 != 0 {
		return OffBornHost + 20
	}
	return OffBornHost + 8
}

// ParseRecordFields extracts the indexed fields of the MessageExt record b
// (whose length is its TOTALSIZE). It never panics on inconsistent input.
func ParseRecordFields(b []byte) (RecordFields, error) {
	var v RecordFields
	if len(b) < MinRecordSize {
		return v, ErrBadRecord
	}
	be := binary.BigEndian
	v.QueueID = int32(be.Uint32(b[OffQueueID:]))
	v.QueueOffset = int64(be.Uint64(b[OffQueueOffset:]))
	sys := int32(be.Uint32(b[OffSysFlag:]))
	p := StoreTimestampPos(sys)
	if p+8 > len(b) {
		return v, ErrBadRecord
	}
	v.StoreTimestamp = int64(be.Uint64(b[p:]))
	p += 8
	if sys&SysFlagStoreHostV6 != 0 {
		p += 20
	} else {
		p += 8
	}
	p += 4 + 8 // reconsume times, prepared tx offset
	if p+4 > len(b) {
		return v, ErrBadRecord
	}
	bodyLen := int(be.Uint32(b[p:]))
	p += 4
	if bodyLen < 0 || bodyLen > len(b)-p-3 {
		return v, ErrBadRecord
	}
	p += bodyLen
	tl := int(b[p])
	p++
	if tl == 0 || tl > len(b)-p-2 {
		return v, ErrBadRecord
	}
	v.Topic = b[p : p+tl]
	p += tl
	pl := int(int16(be.Uint16(b[p:])))
	p += 2
	if pl < 0 || p+pl != len(b) {
		return v, ErrBadRecord
	}
	v.Properties = b[p:]
	return v, nil
}

// PropsTagHash returns the consume-queue tag code of a record's properties.
func PropsTagHash(props []byte) int64 {
	tags, ok := PropertyValue(props, PropTags)
	if !ok || len(tags) == 0 {
		return 0
	}
	return TagHash(tags)
}

// ForEachKey calls fn for every KEYS entry (space separated) and the
// UNIQ_KEY of a record's properties.
func ForEachKey(props []byte, fn func(key []byte)) {
	if keys, ok := PropertyValue(props, PropKeys); ok {
		for len(keys) > 0 {
			var k []byte
			if i := bytes.IndexByte(keys, ' '); i >= 0 {
				k, keys = keys[:i], keys[i+1:]
			} else {
				k, keys = keys, nil
			}
			if len(k) > 0 {
				fn(k)
			}
		}
	}
	if u, ok := PropertyValue(props, PropUniqKey); ok && len(u) > 0 {
		fn(u)
	}
}

// HasKey reports whether a record's properties carry key in KEYS or as its
// UNIQ_KEY.
func HasKey(props []byte, key string) bool {
	found := false
	ForEachKey(props, func(k []byte) {
		if string(k) == key {
			found = true
		}
	})
	return found
}
