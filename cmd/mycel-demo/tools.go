package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The demo image is FROM scratch: it has no shell and no coreutils. These
// few tools, chosen by the first argument, let tests and users look inside a
// container (`args: ["cat", "/etc/config/key"]`, `kubectl exec POD --
// /mycel-demo env`).
var tools = map[string]func(args []string) int{
	// cat FILE... prints files.
	"cat": func(args []string) int {
		code := 0
		for _, f := range args {
			b, err := os.ReadFile(f)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				code = 1
				continue
			}
			os.Stdout.Write(b)
		}
		return code
	},
	// spin [FRACTION] keeps FRACTION (default 0.2) of one CPU busy until
	// killed: load for `kubectl top` and autoscaling tests.
	"spin": func(args []string) int {
		frac := 0.2
		if len(args) > 0 {
			f, err := strconv.ParseFloat(args[0], 64)
			if err != nil || f <= 0 || f > 1 {
				fmt.Fprintln(os.Stderr, "usage: spin [FRACTION in (0,1]]")
				return 2
			}
			frac = f
		}
		const period = 10 * time.Millisecond
		busy := time.Duration(frac * float64(period))
		for {
			for start := time.Now(); time.Since(start) < busy; {
			}
			time.Sleep(period - busy)
		}
	},
	// env prints the environment, sorted.
	"env": func([]string) int {
		env := os.Environ()
		slices.Sort(env)
		for _, e := range env {
			fmt.Println(e)
		}
		return 0
	},
	// watch FILE prints FILE's content, then again each time it changes,
	// until killed.
	"watch": func(args []string) int {
		if len(args) != 1 {
			fmt.Fprintln(os.Stderr, "usage: watch FILE")
			return 2
		}
		var last []byte
		for first := true; ; first = false {
			b, err := os.ReadFile(args[0])
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
			} else if first || !bytes.Equal(b, last) {
				fmt.Printf("%s: %s\n", args[0], b)
				last = b
			}
			time.Sleep(100 * time.Millisecond)
		}
	},
	// sleep SECONDS waits.
	"sleep": func(args []string) int {
		if len(args) != 1 {
			fmt.Fprintln(os.Stderr, "usage: sleep SECONDS")
			return 2
		}
		s, err := strconv.ParseFloat(args[0], 64)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		time.Sleep(time.Duration(s * float64(time.Second)))
		return 0
	},
	// exit CODE [TEXT...] prints TEXT and exits with CODE.
	"exit": func(args []string) int {
		if len(args) == 0 {
			fmt.Fprintln(os.Stderr, "usage: exit CODE [TEXT...]")
			return 2
		}
		code, err := strconv.Atoi(args[0])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		if len(args) > 1 {
			fmt.Println(strings.Join(args[1:], " "))
		}
		return code
	},
	// get URL prints the body of a GET of URL; it fails unless the status
	// is 2xx.
	"get": func(args []string) int {
		if len(args) != 1 {
			fmt.Fprintln(os.Stderr, "usage: get URL")
			return 2
		}
		c := http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get(args[0])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer resp.Body.Close()
		io.Copy(os.Stdout, resp.Body)
		if resp.StatusCode/100 != 2 {
			fmt.Fprintln(os.Stderr, resp.Status)
			return 1
		}
		return 0
	},
	// write FILE TEXT... writes TEXT to FILE.
	"write": func(args []string) int {
		if len(args) < 2 {
			fmt.Fprintln(os.Stderr, "usage: write FILE TEXT...")
			return 2
		}
		if err := os.WriteFile(args[0], []byte(strings.Join(args[1:], " ")), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	},
	"true":  func([]string) int { return 0 },
	"false": func([]string) int { return 1 },
}
