package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/gymhq/herald/config"
)

// FuzzLoad sets one variable of a valid email worker's environment to
// anything: Load must not panic, and must either accept the value or stop
// with one line that names a variable (an *Error).
func FuzzLoad(f *testing.F) {
	base := map[string]string{
		"HERALD_KAFKA_BROKERS": "k1:9092,k2:9092", "HERALD_REDIS_URL": "redis://127.0.0.1:6379/0",
		"HERALD_SMTP_ADDR": "smtp.example.com:587", "HERALD_EMAIL_FROM": "Gym <bookings@example.com>",
	}
	names := config.Names()
	f.Add(0, "k1:9092")
	f.Add(3, "-1")
	f.Add(7, "1h\n")
	f.Add(11, "\xff\xfe")
	f.Add(20, "")
	f.Fuzz(func(t *testing.T, i int, value string) {
		if i < 0 {
			i = -i
		}
		name := names[i%len(names)]
		if strings.HasSuffix(name, "_FILE") {
			t.Skip() // a path: reading files is not what this fuzzes
		}
		env := func(k string) string {
			if k == name {
				return value
			}
			return base[k]
		}
		_, err := config.Load([]string{"--role", "email"}, env)
		if err == nil {
			return
		}
		var ce *config.Error
		// Several missing variables are named together: "A, B: required".
		if !errors.As(err, &ce) || ce.Var == "" || !(strings.HasPrefix(err.Error(), ce.Var+":") || strings.HasPrefix(err.Error(), ce.Var+", ")) {
			t.Fatalf("%s=%q: error %q does not start with the variable it is about", name, value, err)
		}
		if strings.Count(err.Error(), "\n") > 0 {
			t.Fatalf("%s=%q: error spans lines: %q", name, value, err)
		}
	})
}
