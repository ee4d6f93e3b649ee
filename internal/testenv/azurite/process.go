package azurite

import (
	"errors"
	"fmt"
	"net/http"
	"os"
)

// StartProcess launches Azurite outside a test (benchmarks, tools): the same
// in-memory instance on free loopback ports as Start, without a testing.TB.
// bin is the azurite executable ("" finds it like Start does). OAuth is not
// supported here. The caller must call Close, which stops Azurite and removes
// its working directory.
func StartProcess(bin string, opts Options) (*Instance, error) {
	if opts.OAuth {
		return nil, errors.New("azurite: StartProcess does not support OAuth; use Start in tests")
	}
	if opts.Services == 0 {
		opts.Services = Blob | Queue
	}
	if bin == "" {
		var err error
		if bin, err = findBinary(); err != nil {
			return nil, fmt.Errorf("azurite not installed: %w", err)
		}
	}
	dir, err := os.MkdirTemp("", "azurite-*")
	if err != nil {
		return nil, err
	}
	inst := &Instance{
		bin:        bin,
		opts:       opts,
		accounts:   map[string]string{DevAccountName: DevAccountKey},
		dir:        dir,
		httpClient: &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()},
	}
	for _, a := range opts.Accounts {
		if a.Name == "" || a.Key == "" {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("azurite: account %q needs a name and a base64 key", a.Name)
		}
		inst.accounts[a.Name] = a.Key
	}
	var lastErr error
	for try := 0; try < startTries; try++ {
		if err := inst.pickPorts(); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("azurite: pick ports: %w", err)
		}
		lastErr = inst.launch()
		if lastErr == nil {
			return inst, nil
		}
		if !errors.Is(lastErr, errPortInUse) {
			break
		}
	}
	os.RemoveAll(dir)
	return nil, fmt.Errorf("azurite: start: %w", lastErr)
}

// Close stops Azurite and removes its working directory (for instances from
// StartProcess; with Start the test's TempDir is removed by the test).
func (i *Instance) Close() {
	i.Stop()
	if i.dir != "" {
		_ = os.RemoveAll(i.dir)
	}
}

// Pid is the process id of the running Azurite (0 when stopped), for reading
// its CPU time and memory from /proc.
func (i *Instance) Pid() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.proc == nil {
		return 0
	}
	return i.proc.cmd.Process.Pid
}
