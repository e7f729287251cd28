package keyfile

import (
	"errors"
	"os"
	"syscall"
)

// isSymlinkRefused tells whether an open with syscallNoFollow failed because
// the path is a symbolic link.
func isSymlinkRefused(err error) bool { return errors.Is(err, syscall.ELOOP) }

// syscallNoFollow refuses a symbolic link as the key file: whoever can
// write the directory could otherwise point weftd at another file.
const syscallNoFollow = syscall.O_NOFOLLOW

func ownerOf(fi os.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}
