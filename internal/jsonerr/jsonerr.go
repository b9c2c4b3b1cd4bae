// Package jsonerr says what is wrong with a JSON document without quoting
// it: encoding/json's messages may hold a piece of the input, and the
// documents the agent reads (control-plane answers, docker's config.json)
// hold secret values.
package jsonerr

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Scrub returns an error from encoding/json stripped down to its kind and
// where it is: "syntax error at byte N", or for a value of the wrong type
// "JSON string where int was expected (field "f", at byte N)"; any other
// error is "invalid JSON". It never holds a byte of the input. nil stays nil.
func Scrub(err error) error {
	if err == nil {
		return nil
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("syntax error at byte %d", syn.Offset)
	case errors.As(err, &typ) && typ.Field != "":
		return fmt.Errorf("JSON %s where %s was expected (field %q, at byte %d)", typ.Value, typ.Type, typ.Field, typ.Offset)
	case errors.As(err, &typ):
		return fmt.Errorf("JSON %s where %s was expected (at byte %d)", typ.Value, typ.Type, typ.Offset)
	}
	return errors.New("invalid JSON")
}
