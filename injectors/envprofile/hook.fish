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
#
# Time: a change costs time linear in the number of variables: no list is
# searched with contains. After each sync the hook keeps the escaped value
# of every variable of the set (__secrets_agent_vals, one line each, in the
# order of __secrets_agent_vars) and all the values joined with \x1e
# (__secrets_agent_snap). That the user touched none of them is found out
# by comparing the join once (a value holding \x1e could let two edits
# cancel out; a user would have to craft that); then a change that adds or
# removes no name needs no look at each name, and one that does erases the
# whole last set at once and looks at each name only if one of the new set
# is the user's. Otherwise, during one sync, whether each name of the last
# set is still ours
# (__secrets_agent_o_NAME), is in the new set (__secrets_agent_n_NAME) and a
# user's value to keep (__secrets_agent_k_NAME) live in variables of their
# own.
if not set -q __secrets_agent_hook_loaded
    set -g __secrets_agent_hook_loaded 1
    set -g __secrets_agent_default_dir @DEFAULT_DIR@
    set -g __secrets_agent_vars
    set -g __secrets_agent_vals
    set -g __secrets_agent_untracked

    # __secrets_agent_values prints the escaped value of each named variable,
    # one line each, "(unset)" (which no escaped value is) for one that is
    # not set: at once when each is set and one element long (the usual
    # case), else name by name, the same for a variable of one element.
    function __secrets_agent_values
        if test (count $argv) = 0
            return 0
        end
        if set -q $argv; and test (count $$argv) = (count $argv)
            string escape -- $$argv
            return 0
        end
        for n in $argv
            if set -q $n
                string escape -- "$$n"
            else
                echo '(unset)'
            end
        end
    end

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
        set names (string match -r -- '^[A-Za-z_][A-Za-z0-9_]*$' $names)
        # Names are words without spaces: the joined lists are equal iff
        # the lists are.
        set -l same_names 0
        test "$names" = "$__secrets_agent_vars"; and set same_names 1
        set -l old $__secrets_agent_vars

        # (1) Not the first time: a variable of the new set that the user has
        # set, changed or erased is kept as the user made it (kg lists them),
        # unless nothing of the last set can have been touched. A name of the
        # last set is ours if it is not in __secrets_agent_untracked (those
        # the user kept) and still holds the value the last sync left.
        set -l kg
        set -l untouched 0
        if set -q __secrets_agent_line; and test (count $__secrets_agent_untracked) = 0
            and test "$(string join \x1e -- $$old .)" = "$__secrets_agent_snap"
            set untouched 1
        end
        if set -q __secrets_agent_line; and test $untouched = 0
            set -l now (__secrets_agent_values $old)
            for i in (seq (count $old))
                contains -- $old[$i] $__secrets_agent_untracked; and continue
                # 1: still ours; 0: ours, but the user changed or erased it.
                if test "$now[$i]" = "$__secrets_agent_vals[$i]"
                    set -g __secrets_agent_o_$old[$i] 1
                else
                    set -g __secrets_agent_o_$old[$i] 0
                end
            end
            for n in $names
                set -l o __secrets_agent_o_$n
                set -q $o; and test "$$o" = 1; and continue
                if set -q $n
                    set -g __secrets_agent_k_$n $$n
                    set -a kg $n
                else if set -q $o
                    set -a kg $n # the user erased it
                end
            end
        else if test $untouched = 1; and test $same_names = 0
            # Every variable of the last set is ours and as we left it: erase
            # them all at once (the fragment sets again those it still has).
            # A name of the new set that is still set is then the user's own,
            # and only if there is any is each name looked at.
            test (count $old) = 0; or set -e -g $old
            if test (count $names) != 0; and test (count $$names) != 0
                for n in $names
                    if set -q $n
                        set -g __secrets_agent_k_$n $$n
                        set -a kg $n
                    end
                end
            end
            set old
        end

        # (2) Source it.
        source "$f"

        # (3) If the set of names changed (and the last set was not taken
        # away whole): erase ours that the fragment no longer sets, if they
        # still held our value before it was sourced.
        if test $same_names = 0; and test (count $old) != 0
            for n in $names
                set -g __secrets_agent_n_$n
            end
            for n in $old
                set -q __secrets_agent_n_$n; and continue
                set -l o __secrets_agent_o_$n
                set -q $o; and test "$$o" = 1; and set -e -g $n
            end
            test (count $names) = 0; or set -e -g __secrets_agent_n_$names
        end
        test (count $old) = 0; or set -e -g __secrets_agent_o_$old

        # (4) Put back what the user had; those are not tracked.
        for n in $kg
            set -l k __secrets_agent_k_$n
            if set -q $k
                set -g $n $$k
                set -e -g $k
            else
                set -e -g $n
            end
        end
        set -g __secrets_agent_untracked $kg

        # (5) Keep every value for the next change.
        set -g __secrets_agent_vals (__secrets_agent_values $names)
        set -g __secrets_agent_snap "$(string join \x1e -- $$names .)"
        set -g __secrets_agent_vars $names
        set -g __secrets_agent_line "# secrets-agent generation $__SECRETS_AGENT_GEN"
    end

    function __secrets_agent_prompt --on-event fish_prompt
        set -l s $status
        __secrets_agent_sync
        return $s
    end

    __secrets_agent_sync
end
