// rendezvous.hpp — how ranks of the emulated NCCL, each in its own process, meet: files in a directory named after
// the communicator's unique id. A file appears whole (written aside, then renamed), so a reader that sees it can read
// it; waits poll with short sleeps and give up after SHARDWISE_COMM_TIMEOUT_SECONDS.
#pragma once

#include <string>

namespace emu
{
// $TMPDIR (or /tmp)/shardwise-emulated-nccl-TOKEN, created if missing.
std::string rendezvous_directory(const std::string& token);

// Writes `payload` as directory/name, atomically; false (with a stderr line) when the file system refuses.
bool publish(const std::string& directory, const std::string& name, const std::string& payload);

// Waits until directory/name exists and reads it into `payload`; false after the timeout.
bool await(const std::string& directory, const std::string& name, std::string& payload);

void remove(const std::string& directory, const std::string& name);

// This rank is done with the communicator: the last of `ranks` to leave removes the directory.
void leave(const std::string& directory, int rank, int ranks);

// Removes the directory and its files now (a communicator that failed to form: its late peers time out too).
void discard(const std::string& directory);

// SHARDWISE_COMM_TIMEOUT_SECONDS (the runtime's collective deadline), else 300.
int timeout_seconds();
} // namespace emu
