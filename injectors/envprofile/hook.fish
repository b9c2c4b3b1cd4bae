# secrets-agent shell hook for fish. Installed by `secrets-agent install-hooks`;
# remove it with `secrets-agent install-hooks --uninstall`.
#
# It sources env.fish, the environment variables secrets-agent keeps current,
# when fish starts, and again at each prompt (fish_prompt event) when the
# file changed.
#
# Where: $SECRETS_AGENT_ENV_DIR/env.fish if SECRETS_AGENT_ENV_DIR is set, else
# @DEFAULT_DIR_DOC@/env.fish, the agent's default.
#
# Cost: a prompt where nothing changed runs builtins only (read, test,
# return): it reads the fragment's first line, "# secrets-agent generation
# <token>", and compares it with the one it sourced last. $status is kept.
#
# Variables: at shell start the fragment is sourced as is. Later, a variable
# whose secret is removed is erased and a rotated one is updated, but only if
# it still holds the value this hook set; a variable the user has set,
# changed or erased is left as the user made it (and no longer tracked).
if not set -q __secrets_agent_hook_loaded
    set -g __secrets_agent_hook_loaded 1
    set -g __secrets_agent_default_dir @DEFAULT_DIR@
    set -g __secrets_agent_vars

    function __secrets_agent_sync
        set -l f "$__secrets_agent_default_dir/env.fish"
        if test -n "$SECRETS_AGENT_ENV_DIR"
            set f "$SECRETS_AGENT_ENV_DIR/env.fish"
        end
        # Only a fragment this user owns: a root shell that kept another user's
        # $USER (su without -) must not source a file that user can write.
        test -r "$f"; and test -O "$f"; or return 0
        set -l l1
        set -l l2
        read l1 <"$f"; or return 0
        test "$l1" = "$__secrets_agent_line"; and return 0

        # Changed (or first time): read the names it sets.
        begin
            read l1; and read l2
        end <"$f"; or return 0
        string match -q -- '# secrets-agent generation *' "$l1"; or return 0
        string match -q -- '# secrets-agent vars*' "$l2"; or return 0
        set -l names (string replace -- '# secrets-agent vars' '' "$l2" | string split -n ' ')

        # (1) Not the first time: a variable of the new set that the user has
        # set, changed or erased is kept as it is.
        set -l keep
        set -l gone
        if set -q __secrets_agent_line
            for n in $names
                string match -qr '^[A-Za-z_][A-Za-z0-9_]*$' -- $n; or continue
                set -l saved __secrets_agent_v_$n
                if contains -- $n $__secrets_agent_vars; and set -q $n; and test "$$n" = "$$saved"
                    continue # still ours
                end
                if set -q $n
                    set -g __secrets_agent_k_$n $$n
                    set -a keep $n
                else if contains -- $n $__secrets_agent_vars
                    set -a gone $n
                end
            end
        end

        # (2) Source it.
        source "$f"

        # (3) Put back what the user had.
        for n in $keep
            set -l k __secrets_agent_k_$n
            set -g $n $$k
            set -e -g $k
        end
        for n in $gone
            set -e -g $n
        end

        # (4) Erase ours that the fragment no longer sets, if they still hold our value.
        for n in $__secrets_agent_vars
            contains -- $n $__SECRETS_AGENT_VARS; and continue
            set -l saved __secrets_agent_v_$n
            if set -q $n; and test "$$n" = "$$saved"
                set -e -g $n
            end
            set -e -g $saved
        end

        # (5) Track what we set now, with the value we set.
        set -l new
        for n in $__SECRETS_AGENT_VARS
            if contains -- $n $keep $gone
                set -e -g __secrets_agent_v_$n
            else
                set -g __secrets_agent_v_$n $$n
                set -a new $n
            end
        end
        set -g __secrets_agent_vars $new
        set -g __secrets_agent_line "# secrets-agent generation $__SECRETS_AGENT_GEN"
    end

    function __secrets_agent_prompt --on-event fish_prompt
        set -l s $status
        __secrets_agent_sync
        return $s
    end

    __secrets_agent_sync
end
