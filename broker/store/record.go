package store

import (
	"bytes"
	"encoding/binary"
	"errors"

	"github.com/strata-mq/strata/remoting"
)

// recordView holds the fields the store indexes, sliced from a record
// without allocating.
type recordView struct {
	topic       []byte
	queueID     int32
	queueOffset int64
	storeTs     int64
	props       []byte
}

var errBadRecord = errors.New("store: inconsistent record fields")

// storeTsPos returns the byte position of STORETIMESTAMP in a record with
// the given SYSFLAG.
func storeTsPos(sysFlag int32) int {
	if sysFlag&remoting.SysFlagBornHostV6 != 0 {
		return remoting.OffBornHost + 20
	}
	return remoting.OffBornHost + 8
}

// parseRecord extracts the indexed fields of the MessageExt record b (whose
// length is its TOTALSIZE). It never panics on inconsistent input.
func parseRecord(b []byte) (recordView, error) {
	var v recordView
	if len(b) < remoting.MinRecordSize {
		return v, errBadRecord
	}
	be := binary.BigEndian
	v.queueID = int32(be.Uint32(b[remoting.OffQueueID:]))
	v.queueOffset = int64(be.Uint64(b[remoting.OffQueueOffset:]))
	sys := int32(be.Uint32(b[remoting.OffSysFlag:]))
	p := storeTsPos(sys)
	if p+8 > len(b) {
		return v, errBadRecord
	}
	v.storeTs = int64(be.Uint64(b[p:]))
	p += 8
	if sys&remoting.SysFlagStoreHostV6 != 0 {
		p += 20
	} else {
		p += 8
	}
	p += 4 + 8 // reconsume times, prepared tx offset
	if p+4 > len(b) {
		return v, errBadRecord
	}
	bodyLen := int(be.Uint32(b[p:]))
	p += 4
	if bodyLen < 0 || bodyLen > len(b)-p-3 {
		return v, errBadRecord
	}
	p += bodyLen
	tl := int(b[p])
	p++
	if tl == 0 || tl > len(b)-p-2 {
		return v, errBadRecord
	}
	v.topic = b[p : p+tl]
	p += tl
	pl := int(int16(be.Uint16(b[p:])))
	p += 2
	if pl < 0 || p+pl != len(b) {
		return v, errBadRecord
	}
	v.props = b[p:]
	return v, nil
}

// tagHash returns the consume-queue tag code of a record's properties.
func tagHash(props []byte) int64 {
	tags, ok := remoting.PropertyValue(props, remoting.PropTags)
	if !ok || len(tags) == 0 {
		return 0
	}
	return remoting.TagHash(tags)
}

// forEachKey calls fn for every KEYS entry (space separated) and the
// UNIQ_KEY of a record's properties.
func forEachKey(props []byte, fn func(key []byte)) {
	if keys, ok := remoting.PropertyValue(props, remoting.PropKeys); ok {
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
	if u, ok := remoting.PropertyValue(props, remoting.PropUniqKey); ok && len(u) > 0 {
		fn(u)
	}
}

// hasKey reports whether a record's properties carry key in KEYS or as its
// UNIQ_KEY.
func hasKey(props []byte, key string) bool {
	found := false
	forEachKey(props, func(k []byte) {
		if string(k) == key {
			found = true
		}
	})
	return found
}
