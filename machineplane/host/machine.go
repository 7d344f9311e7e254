package host

import (
	"bufio"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"
)

// Machine describes the machine a node runs on.
type Machine struct {
	CPUs          int
	MemoryBytes   int64
	KernelVersion string
	OSImage       string // PRETTY_NAME of /etc/os-release
	Hostname      string
}

// Measure reads the machine's CPUs, memory, kernel, OS image and host name.
func Measure() Machine {
	h, _ := os.Hostname()
	return Machine{CPUs: goruntime.NumCPU(), MemoryBytes: memTotal(), KernelVersion: kernelVersion(), OSImage: osImage(), Hostname: h}
}

func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func kernelVersion() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

func osImage() string {
	f, err := os.Open("/etc/os-release")
	if err != nil {
		return goruntime.GOOS
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return goruntime.GOOS
}
