// rendezvous.cpp — see rendezvous.hpp.
#include "rendezvous.hpp"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace emu
{
namespace
{
bool exists(const std::string& path)
{
    struct stat status;
    return ::stat(path.c_str(), &status) == 0;
}
} // namespace

int timeout_seconds()
{
    const char* text = std::getenv("SHARDWISE_COMM_TIMEOUT_SECONDS");
    double seconds = text == nullptr ? 0 : std::atof(text);
    return seconds >= 1 ? static_cast<int>(seconds) : 300;
}

std::string rendezvous_directory(const std::string& token)
{
    const char* base = std::getenv("TMPDIR");
    std::string directory = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/shardwise-emulated-nccl-" + token;
    if (::mkdir(directory.c_str(), 0700) != 0 && errno != EEXIST)
        std::fprintf(stderr, "nccl-emulator: cannot create %s: %s\n", directory.c_str(), std::strerror(errno));
    return directory;
}

bool publish(const std::string& directory, const std::string& name, const std::string& payload)
{
    std::string path = directory + "/" + name, aside = path + ".tmp";
    {
        std::ofstream file(aside, std::ios::binary | std::ios::trunc);
        file.write(payload.data(), static_cast<std::streamsize>(payload.size()));
        if (!file)
        {
            std::fprintf(stderr, "nccl-emulator: cannot write %s\n", aside.c_str());
            return false;
        }
    }
    if (::rename(aside.c_str(), path.c_str()) != 0)
    {
        std::fprintf(stderr, "nccl-emulator: cannot rename %s: %s\n", aside.c_str(), std::strerror(errno));
        return false;
    }
    return true;
}

bool await(const std::string& directory, const std::string& name, std::string& payload)
{
    std::string path = directory + "/" + name;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds());
    auto pause = std::chrono::microseconds(20);
    while (!exists(path))
    {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(pause);
        if (pause < std::chrono::microseconds(2000)) pause *= 2;
    }
    std::ifstream file(path, std::ios::binary);
    std::ostringstream content;
    content << file.rdbuf();
    payload = content.str();
    return true;
}

void remove(const std::string& directory, const std::string& name) { ::unlink((directory + "/" + name).c_str()); }

void leave(const std::string& directory, int rank, int ranks)
{
    publish(directory, "gone." + std::to_string(rank), "");
    for (int r = 0; r < ranks; r++)
        if (!exists(directory + "/gone." + std::to_string(r))) return;  // a later rank cleans up
    // Every rank has left, so nobody reads here any more (two last ranks may both get here; unlink tolerates it).
    discard(directory);
}

void discard(const std::string& directory)
{
    if (DIR* listing = ::opendir(directory.c_str()))
    {
        while (dirent* entry = ::readdir(listing))
            if (std::strcmp(entry->d_name, ".") != 0 && std::strcmp(entry->d_name, "..") != 0)
                ::unlink((directory + "/" + entry->d_name).c_str());
        ::closedir(listing);
    }
    ::rmdir(directory.c_str());
}
} // namespace emu
