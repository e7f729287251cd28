package overlay

import (
	"encoding/binary"
	"unsafe"
)

func unsafePointer(b *byte) unsafe.Pointer { return unsafe.Pointer(b) }

func putNative16(b []byte, v uint16) { binary.NativeEndian.PutUint16(b, v) }

func getNative32(b []byte) uint32 { return binary.NativeEndian.Uint32(b) }

func nativeUint16(b []byte) uint16 { return binary.NativeEndian.Uint16(b) }
