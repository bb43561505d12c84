package remoting

import (
	"encoding/json"
	"reflect"
	"testing"
)

// slowJSONHeader is the encoding/json path alone.
func slowJSONHeader(b []byte) (*Command, error) {
	var h jsonHeader
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, err
	}
	c := &Command{Code: h.Code, Language: h.Language, Version: h.Version, Opaque: h.Opaque, Flag: h.Flag, Remark: h.Remark}
	if len(h.ExtFields) > 0 {
		c.ExtFields = h.ExtFields
	}
	return c, nil
}

var jsonHeaderSeeds = []string{
	`{"code":10,"language":"GO","version":317,"opaque":7,"flag":0,"remark":"","extFields":{"a":"pg","b":"T","e":"1"}}`,
	`{"code":0,"extFields":null}`,
	`{}`,
	` { "code" : -3 , "remark" : "héllo" , "extFields" : { } } `,
	`{"code":1,"code":2}`,
	`{"extFields":{"a":"1"},"extFields":{}}`,
	`{"code":32768}`,
	`{"code":01}`,
	`{"code":1.0}`,
	`{"remark":"a\nb"}`,
	`{"code":10,"extFields":{"i":"TAGS\u0001x\u0002KEYS\u0001k1 k2\u0002","q":"\"\\\/\b\f\n\r\t\u00e9\u20ac"}}`,
	`{"remark":"\ud83d\ude00"}`,
	`{"remark":"\x"}`,
	`{"Code":5}`,
	`{"language":"JAVA","serializeTypeCurrentRPC":"JSON"}`,
	`{"code":1}x`,
}

// TestJSONHeaderFastMatchesEncodingJSON: the fast path either declines or
// gives exactly what encoding/json gives.
func TestJSONHeaderFastMatchesEncodingJSON(t *testing.T) {
	fast := 0
	for _, s := range jsonHeaderSeeds {
		if checkFastHeader(t, []byte(s)) {
			fast++
		}
	}
	if fast < 4 {
		t.Fatalf("the fast path took only %d of the common headers", fast)
	}
}

func checkFastHeader(t *testing.T, b []byte) bool {
	got, ok := decodeJSONHeaderFast(b)
	if !ok {
		return false
	}
	want, err := slowJSONHeader(b)
	if err != nil {
		t.Fatalf("fast path accepted %q, encoding/json refuses it: %v", b, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("header %q: fast %+v, encoding/json %+v", b, got, want)
	}
	return true
}

func FuzzJSONHeaderFast(f *testing.F) {
	for _, s := range jsonHeaderSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkFastHeader(t, b) })
}

func BenchmarkDecodeJSONHeader(b *testing.B) {
	h := []byte(jsonHeaderSeeds[0])
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			decodeJSONHeaderFast(h)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			slowJSONHeader(h)
		}
	})
}
