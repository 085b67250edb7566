package rules

import "testing"

func TestHasNULEscape(t *testing.T) {
	cases := map[string]bool{
		`{"a":"x"}`:             false,
		`{"a":"\u0000"}`:        true,
		`{"a":"\\u0000"}`:       false, // escaped backslash, then text
		`{"a":"\\\u0000"}`:      true,  // escaped backslash, then the escape
		`{"a":"\\u0000\u0000"}`: true,
		`{"\u0000":1}`:          true,
		`{"a":"\u00001"}`:       true,
		`{"a":"\u0001"}`:        false,
	}
	for doc, want := range cases {
		if got := hasNULEscape([]byte(doc)); got != want {
			t.Errorf("hasNULEscape(%s) = %v, want %v", doc, got, want)
		}
	}
}
