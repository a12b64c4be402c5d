_vhostfsd() {
    local i cur prev opts cmd
    COMPREPLY=()
    if [[ "${BASH_VERSINFO[0]}" -ge 4 ]]; then
        cur="$2"
    else
        cur="${COMP_WORDS[COMP_CWORD]}"
    fi
    prev="$3"
    cmd=""
    opts=""

    for i in "${COMP_WORDS[@]:0:COMP_CWORD}"
    do
        case "${cmd},${i}" in
            ",$1")
                cmd="vhostfsd"
                ;;
            *)
                ;;
        esac
    done

    case "${cmd}" in
        vhostfsd)
            opts="-f -d -o -h -V --shared-dir --tag --socket-path --mount --passthrough --io-uring --socket-group --fd --thread-pool-size --poll-max-us --num-request-queues --queue-size --dax-window --dax-policy --xattr --posix-acl --xattrmap --sandbox --allow-suid-dev --seccomp --announce-submounts --inode-file-handles --inode-fd-cache --cache --allow-direct-io --writeback --no-readdirplus --readonly --allow-mmap --killpriv-v2 --no-killpriv-v2 --migration-mode --migration-on-error --migration-verify-handles --migration-confirm-paths --rlimit-nofile --log-level --syslog --print-capabilities --modcaps --uid-map --gid-map --translate-uid --translate-gid --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 1 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --shared-dir)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --tag)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --socket-path)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --mount)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --passthrough)
                    COMPREPLY=($(compgen -W "auto on off" -- "${cur}"))
                    return 0
                    ;;
                --io-uring)
                    COMPREPLY=($(compgen -W "auto on off" -- "${cur}"))
                    return 0
                    ;;
                --socket-group)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --fd)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --thread-pool-size)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --poll-max-us)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --num-request-queues)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --queue-size)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dax-window)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dax-policy)
                    COMPREPLY=($(compgen -W "always never large-files attr" -- "${cur}"))
                    return 0
                    ;;
                --xattrmap)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --sandbox)
                    COMPREPLY=($(compgen -W "namespace chroot none" -- "${cur}"))
                    return 0
                    ;;
                --seccomp)
                    COMPREPLY=($(compgen -W "none kill log trap" -- "${cur}"))
                    return 0
                    ;;
                --inode-file-handles)
                    COMPREPLY=($(compgen -W "never prefer mandatory" -- "${cur}"))
                    return 0
                    ;;
                --inode-fd-cache)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --cache)
                    COMPREPLY=($(compgen -W "never metadata auto always" -- "${cur}"))
                    return 0
                    ;;
                --migration-mode)
                    COMPREPLY=($(compgen -W "find-paths file-handles" -- "${cur}"))
                    return 0
                    ;;
                --migration-on-error)
                    COMPREPLY=($(compgen -W "abort guest-error" -- "${cur}"))
                    return 0
                    ;;
                --rlimit-nofile)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --log-level)
                    COMPREPLY=($(compgen -W "error warn info debug trace off" -- "${cur}"))
                    return 0
                    ;;
                --modcaps)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --uid-map)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --gid-map)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --translate-uid)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --translate-gid)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                -o)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
    esac
}

if [[ "${BASH_VERSINFO[0]}" -eq 4 && "${BASH_VERSINFO[1]}" -ge 4 || "${BASH_VERSINFO[0]}" -gt 4 ]]; then
    complete -F _vhostfsd -o nosort -o bashdefault -o default vhostfsd
else
    complete -F _vhostfsd -o bashdefault -o default vhostfsd
fi
