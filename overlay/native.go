package overlay

import (
	"encoding/binary"
	"unsafe"
)

func unsafePointer(b *byte) unsafe.Pointer { return unsafe.Pointer(b) }

func nativeUint16(b []byte) uint16 { return binary.NativeEndian.Uint16(b) }
