package main

// The ciphers, in Go: the same functions as example_ciphers/ciphers.py, with the same error messages.
// ../vectors.json holds the outputs both must produce; `worker_go -vectors ../vectors.json` prints Go's.

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"
	"strings"
)

const (
	maxShift      = 1_000_000
	maxKeyLetters = 100
)

// CipherError: the task's kind or args are not something a cipher can run on.
type CipherError struct{ Message string }

func (e *CipherError) Error() string { return e.Message }

func cipherError(format string, a ...interface{}) error {
	return &CipherError{Message: fmt.Sprintf(format, a...)}
}

func isLetter(c byte) bool { return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') }

// shiftLetter shifts an ASCII letter by shift (any sign) mod 26, keeping its case; other bytes are kept.
// Working on bytes is safe for UTF-8: every byte of a multi-byte character is >= 0x80, so none is a letter.
func shiftLetter(c byte, shift int) byte {
	s := ((shift % 26) + 26) % 26 // Go's % keeps the dividend's sign; Python's does not
	switch {
	case 'a' <= c && c <= 'z':
		return byte((int(c-'a')+s)%26) + 'a'
	case 'A' <= c && c <= 'Z':
		return byte((int(c-'A')+s)%26) + 'A'
	}
	return c
}

func Caesar(plaintext string, shift int) string {
	out := []byte(plaintext)
	for i := range out {
		out[i] = shiftLetter(out[i], shift)
	}
	return string(out)
}

func Rot13(plaintext string) string { return Caesar(plaintext, 13) }

// Vigenere moves on to the next key letter only after a letter of the plaintext; key is ASCII letters.
func Vigenere(plaintext, key string) string {
	lower := strings.ToLower(key)
	out := []byte(plaintext)
	j := 0
	for i := range out {
		if isLetter(out[i]) {
			out[i] = shiftLetter(out[i], int(lower[j%len(lower)]-'a'))
			j++
		}
	}
	return string(out)
}

func Base64(plaintext string) string { return base64.StdEncoding.EncodeToString([]byte(plaintext)) }

func MD5(plaintext string) string {
	sum := md5.Sum([]byte(plaintext))
	return hex.EncodeToString(sum[:])
}

func SHA256(plaintext string) string {
	sum := sha256.Sum256([]byte(plaintext))
	return hex.EncodeToString(sum[:])
}

func plaintextArg(args map[string]interface{}) (string, error) {
	if s, ok := args["plaintext"].(string); ok {
		return s, nil
	}
	return "", cipherError("args.plaintext must be a string")
}

// shiftArg: JSON numbers decode to float64; 3 and 3.0 are the same shift, 3.5, "3" and true are none.
func shiftArg(args map[string]interface{}) (int, error) {
	f, ok := args["shift"].(float64)
	if !ok || f != math.Trunc(f) || f < -maxShift || f > maxShift {
		return 0, cipherError("args.shift must be a whole number from -%d to %d", maxShift, maxShift)
	}
	return int(f), nil
}

func keyArg(args map[string]interface{}) (string, error) {
	key, ok := args["key"].(string)
	valid := ok && len(key) >= 1 && len(key) <= maxKeyLetters
	for i := 0; valid && i < len(key); i++ {
		valid = isLetter(key[i])
	}
	if !valid {
		return "", cipherError("args.key must be 1 to %d ASCII letters", maxKeyLetters)
	}
	return key, nil
}

// Kinds are the task kinds this worker encodes: the cipher families.
var Kinds = []string{"rot13", "base64", "caesar", "vigenere", "md5", "sha256"}

// Encode returns the ciphertext of a task of kind with args, or a *CipherError if they are not valid.
// The plaintext is checked first, then the family's parameter, as in ciphers.py.
func Encode(kind string, args map[string]interface{}) (string, error) {
	simple := map[string]func(string) string{"rot13": Rot13, "base64": Base64, "md5": MD5, "sha256": SHA256}
	if _, known := simple[kind]; !known && kind != "caesar" && kind != "vigenere" {
		return "", cipherError("unknown cipher kind '%s'", kind)
	}
	plaintext, err := plaintextArg(args)
	if err != nil {
		return "", err
	}
	switch kind {
	case "caesar":
		shift, err := shiftArg(args)
		if err != nil {
			return "", err
		}
		return Caesar(plaintext, shift), nil
	case "vigenere":
		key, err := keyArg(args)
		if err != nil {
			return "", err
		}
		return Vigenere(plaintext, key), nil
	}
	return simple[kind](plaintext), nil
}
