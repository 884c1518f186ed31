package graph

import (
	"strconv"
	"unicode"
	"unicode/utf8"
)

// value is one cell. Int, Long and Boolean (0/1) use i; Decimal uses i
// scaled by 10^column.scale; DateTime uses i as ticks (100 ns) of server local
// wall-clock time since 1970-01-01T00:00:00; String uses s.
type value struct {
	null bool
	i    int64
	s    string
}

var nullValue = value{null: true}

func intValue(i int64) value  { return value{i: i} }
func strValue(s string) value { return value{s: s} }

func boolValue(b bool) value {
	if b {
		return value{i: 1}
	}
	return value{}
}

// compareValues orders two values of a column of type typ: nulls first, then
// numbers, ticks and booleans by i, strings by collate.
func compareValues(typ scalarType, a, b value) int {
	switch {
	case a.null && b.null:
		return 0
	case a.null:
		return -1
	case b.null:
		return 1
	}
	if typ == typeString {
		return collate(a.s, b.s)
	}
	return cmpInt(a.i, b.i)
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

// collate compares strings like a case-insensitive, accent-sensitive
// Norwegian SQL Server collation: letters compare case-folded, and æ ø å sort
// after z in that order.
func collate(a, b string) int {
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb {
			ka, kb := collationKey(ra), collationKey(rb)
			if ka != kb {
				if ka < kb {
					return -1
				}
				return 1
			}
		}
		a, b = a[na:], b[nb:]
	}
	switch {
	case a == "" && b == "":
		return 0
	case a == "":
		return -1
	}
	return 1
}

func collationKey(r rune) rune {
	r = unicode.ToLower(r)
	switch r {
	case 'æ':
		return 'z' + 1
	case 'ø':
		return 'z' + 2
	case 'å':
		return 'z' + 3
	}
	return r
}

// appendJSONValue appends v as JSON for a column of type typ and scale.
func appendJSONValue(dst []byte, typ scalarType, scale int, v value) []byte {
	if v.null {
		return append(dst, "null"...)
	}
	switch typ {
	case typeInt, typeLong:
		return strconv.AppendInt(dst, v.i, 10)
	case typeDecimal:
		return appendDecimal(dst, v.i, scale)
	case typeString:
		return appendJSONString(dst, v.s)
	case typeDateTime:
		dst = append(dst, '"')
		dst = appendDateTime(dst, v.i)
		return append(dst, '"')
	case typeBoolean:
		if v.i != 0 {
			return append(dst, "true"...)
		}
		return append(dst, "false"...)
	}
	return append(dst, "null"...)
}

var pow10 = [...]int64{1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000}

// appendDecimal writes a scaled integer as the shortest exact decimal number:
// 123450 with scale 2 is 1234.5.
func appendDecimal(dst []byte, v int64, scale int) []byte {
	if scale == 0 {
		return strconv.AppendInt(dst, v, 10)
	}
	u := uint64(v)
	if v < 0 {
		dst = append(dst, '-')
		u = uint64(-v)
	}
	p := uint64(pow10[scale])
	dst = strconv.AppendUint(dst, u/p, 10)
	frac := u % p
	if frac == 0 {
		return dst
	}
	digits := scale
	for frac%10 == 0 {
		frac /= 10
		digits--
	}
	dst = append(dst, '.')
	var buf [20]byte
	s := strconv.AppendUint(buf[:0], frac, 10)
	for i := len(s); i < digits; i++ {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string literal.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
