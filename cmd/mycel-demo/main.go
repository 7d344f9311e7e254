// Command mycel-demo is the small static HTTP server of Mycel's demo image
// (`make image`): it answers every request with the pod's name and a
// greeting taken from $GREETING, and logs each request to stdout. Given a
// tool's name as its first argument (cat, env, watch, get, write, sleep, spin,
// exit, true, false) it
// runs that tool instead (tools.go); run as /bin/tar it is enough of tar
// for `kubectl cp` (tar.go).
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

func main() {
	if filepath.Base(os.Args[0]) == "tar" {
		os.Exit(tarTool(os.Args[1:]))
	}
	if len(os.Args) > 1 {
		if tool, ok := tools[os.Args[1]]; ok {
			os.Exit(tool(os.Args[2:]))
		}
	}
	addr := flag.String("addr", ":8080", "listen address")
	exitAfter := flag.Duration("exit-after", 0, "exit with -exit-code after this long (for restart tests)")
	exitCode := flag.Int("exit-code", 1, "exit code used with -exit-after")
	flag.Parse()
	host, _ := os.Hostname()
	greeting := os.Getenv("GREETING")
	if greeting == "" {
		greeting = "hello from mycel"
	}
	log.SetOutput(os.Stdout)
	log.Printf("mycel-demo starting on %s (host %s, greeting %q)", *addr, host, greeting)
	if *exitAfter > 0 {
		go func() {
			time.Sleep(*exitAfter)
			log.Printf("exiting with code %d as asked", *exitCode)
			os.Exit(*exitCode)
		}()
	}
	// As PID 1 in a container, SIGTERM is ignored unless handled.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		log.Printf("stopping")
		os.Exit(0)
	}()
	// /bytes?n=N answers N bytes, for throughput measurements.
	http.HandleFunc("/bytes", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		chunk := make([]byte, 64<<10)
		for ; n > 0; n -= int64(len(chunk)) {
			w.Write(chunk[:min(n, int64(len(chunk)))])
		}
	})
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		log.Printf("%s %s from %s", r.Method, r.URL.Path, r.RemoteAddr)
		fmt.Fprintf(w, "%s: %s\n", host, greeting)
	})
	log.Fatal(http.ListenAndServe(*addr, nil))
}
