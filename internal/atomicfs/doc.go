// Package atomicfs writes files and folders so that a crash, a full disk or an interrupt leaves
// either the old content or the complete new one, never a torn file or a folder that mixes old
// and new files, and so that no command can overwrite or delete its own input.
//
// Files are written to a temporary sibling, fsynced, given their final mode (0644 unless said
// otherwise: os.CreateTemp's 0600 would hide results from the rest of a team) and renamed into
// place; the parent folder is then fsynced so that the rename itself is durable. Folders are built
// in a temporary sibling and swapped in whole. CheckDisjoint refuses an output that is, contains
// or lies inside an input, with symlinks resolved. LockDir gives one process at a time an output
// folder (flock(2): the kernel releases a killed owner's lock), and CleanLeftovers removes the
// temporary files and folders of writes a kill interrupted.
package atomicfs
