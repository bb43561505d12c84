package remoting

import (
	"bytes"
	"sort"
)

// Separators of the properties string: name\x01value\x02 repeated.
const (
	nameValueSep = 0x01
	propertySep  = 0x02
)

// Well-known property names (PROTOCOL.md §4.2).
const (
	PropTags      = "TAGS"
	PropKeys      = "KEYS"
	PropUniqKey   = "UNIQ_KEY"
	PropWait      = "WAIT"
	PropDelay     = "DELAY"
	PropTranMsg   = "TRAN_MSG"
	PropPGroup    = "PGROUP"
	PropRealTopic = "REAL_TOPIC"
	PropRealQID   = "REAL_QID"
)

// PropertyValue finds key in an encoded properties string without
// allocating. It follows the Go client's decoder: pairs are split on \x02,
// then on \x01, a pair with more or fewer than two parts is ignored, and
// when a key repeats the last value wins.
func PropertyValue(props []byte, key string) (value []byte, found bool) {
	for len(props) > 0 {
		var pair []byte
		if i := bytes.IndexByte(props, propertySep); i >= 0 {
			pair, props = props[:i], props[i+1:]
		} else {
			pair, props = props, nil
		}
		i := bytes.IndexByte(pair, nameValueSep)
		if i < 0 || bytes.IndexByte(pair[i+1:], nameValueSep) >= 0 {
			continue
		}
		if string(pair[:i]) == key {
			value, found = pair[i+1:], true
		}
	}
	return value, found
}

// ParseProperties decodes an encoded properties string.
func ParseProperties(props []byte) map[string]string {
	m := make(map[string]string)
	for _, pair := range bytes.Split(props, []byte{propertySep}) {
		kv := bytes.Split(pair, []byte{nameValueSep})
		if len(kv) == 2 {
			m[string(kv[0])] = string(kv[1])
		}
	}
	return m
}

// AppendProperty appends one name/value pair to an encoded properties string.
func AppendProperty(dst []byte, name, value string) []byte {
	dst = append(dst, name...)
	dst = append(dst, nameValueSep)
	dst = append(dst, value...)
	return append(dst, propertySep)
}

// EncodeProperties encodes m with its names in sorted order, so equal maps
// give equal bytes.
func EncodeProperties(m map[string]string) []byte {
	names := make([]string, 0, len(m))
	n := 0
	for k, v := range m {
		names = append(names, k)
		n += len(k) + len(v) + 2
	}
	sort.Strings(names)
	dst := make([]byte, 0, n)
	for _, k := range names {
		dst = AppendProperty(dst, k, m[k])
	}
	return dst
}

// TagHash is the consume-queue tag code of a tag: Java's String.hashCode
// computed over the UTF-8 bytes as a signed 32-bit value (the Go client's
// HashString), sign-extended to 64 bits.
func TagHash(tag []byte) int64 {
	var h int32
	for _, c := range tag {
		h = 31*h + int32(c)
	}
	return int64(h)
}
