package nginx

import "syscall"

// procAttr makes the kernel send SIGTERM to nginx when this process dies,
// so a crashed demo or test leaves no nginx behind.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
