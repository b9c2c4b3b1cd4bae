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
# When the user touched none of them and env.fish.delta takes this shell's
# generation to a later one, only it is sourced (__secrets_agent_delta):
# the names and values that changed, where each name is in the lists, and
# the snapshot (the join) after them, so a change of a few variables costs
# one join and a few copies of the lists, whatever the size of the set, and
# no set, escape or search of every variable. The agent writes no delta for
# a change of most of the set (envprofile.go).
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

        # Changed. Not the first time: if the user touched none of the last
        # set (no name of it is untracked, and every value is as the last
        # sync left it), the delta may do.
        set -l untouched 0
        if set -q __secrets_agent_line; and test (count $__secrets_agent_untracked) = 0
            and test "$(string join \x1e -- $$__secrets_agent_vars .)" = "$__secrets_agent_snap"
            set untouched 1
            __secrets_agent_delta "$f.delta"; and return 0
        end

        # Read the names it sets.
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

    # __secrets_agent_delta sources the delta file $argv[1] (env.fish.delta,
    # written by the agent beside env.fish) and applies what it holds if it
    # goes from this shell's generation to a later one; otherwise it returns
    # 1 having changed nothing (the delta file sets nothing unless the
    # generation it starts from is this shell's; see renderDelta in
    # render.go). The caller has found the last set untouched, so each
    # variable whose value changed or that went away is still ours; a name
    # new to the set that the user has set is the user's and stays as it
    # is (untracked).
    function __secrets_agent_delta
        set -l d $argv[1]
        test -f "$d"; and test -r "$d"; and test -O "$d"; or return 1
        set -l lists __secrets_agent_dgen __secrets_agent_dset __secrets_agent_dadd __secrets_agent_dunset \
            __secrets_agent_dseti __secrets_agent_daddi __secrets_agent_dunseti __secrets_agent_dnames
        set -e -g $lists
        source "$d"
        set -l re '^[A-Za-z_][A-Za-z0-9_]*$'
        set -l gen $__secrets_agent_dgen
        set -l dset $__secrets_agent_dset
        set -l dadd $__secrets_agent_dadd
        set -l dunset $__secrets_agent_dunset
        set -l seti $__secrets_agent_dseti
        set -l addi $__secrets_agent_daddi
        set -l unseti $__secrets_agent_dunseti
        set -l names $__secrets_agent_vars
        # The new list, when it changed, is the last one without the names
        # that went and with those added (whose names are checked).
        set -q __secrets_agent_dnames; and set names $__SECRETS_AGENT_VARS
        set -e -g $lists
        if not set -q gen[1]; or test "$(string match -r -v -- $re $dset $dadd $dunset)" != ""
            or test (count $dset) != (count $seti); or test (count $dadd) != (count $addi)
            or test (count $dunset) != (count $unseti)
            or test (count $names) != (math (count $__secrets_agent_vars) - (count $dunset) + (count $dadd))
            # Not for this shell, or not as the agent writes it: drop what it
            # may have set.
            for n in (string match -r -- $re $dset $dadd)
                set -e -g __secrets_agent_d_$n
            end
            set -e -g __SECRETS_AGENT_SNAPV
            return 1
        end
        # Set and erase; an added name the user has set is theirs.
        for n in $dset
            set -l v __secrets_agent_d_$n
            set -gx $n $$v
            set -e -g $v
        end
        test (count $dunset) = 0; or set -e -g $dunset
        set -l kept
        for n in $dadd
            set -l v __secrets_agent_d_$n
            if set -q $n
                set -a kept $n
            else
                set -gx $n $$v
            end
            set -e -g $v
        end
        # What step (5) of a full sync keeps, changed only where the delta
        # changes it: __secrets_agent_vals, one entry for each name in the
        # order of the names, takes the new values at their places in the
        # last list, loses the entries of the names that went, and gains
        # those of the added ones at their places in the new list.
        test (count $dset) = 0; or set -g __secrets_agent_vals["$seti"] (__secrets_agent_values $dset)
        test (count $dunset) = 0; or set -e -g __secrets_agent_vals["$unseti"]
        if test (count $dadd) != 0
            set -l add (__secrets_agent_values $dadd)
            set -l out
            set -l have 0 # entries in out
            set -l next 1 # the next entry of __secrets_agent_vals to copy
            set -l k 0
            for i in $addi
                set k (math $k + 1)
                if test $i -gt (math $have + 1)
                    set -l last (math $next + $i - $have - 2)
                    set -a out $__secrets_agent_vals[$next..$last]
                    set next (math $last + 1)
                    set have (math $i - 1)
                end
                set -a out $add[$k]
                set have $i
            end
            if test $next -le (count $__secrets_agent_vals)
                set -a out $__secrets_agent_vals[$next..-1]
            end
            set -g __secrets_agent_vals $out
        end
        set -g __secrets_agent_vars $names
        set -g __secrets_agent_untracked $kept
        if test (count $kept) = 0; and set -q __SECRETS_AGENT_SNAPV
            set -g __secrets_agent_snap $__SECRETS_AGENT_SNAPV
        else
            set -g __secrets_agent_snap "$(string join \x1e -- $$__secrets_agent_vars .)"
        end
        set -e -g __SECRETS_AGENT_SNAPV
        set -g __SECRETS_AGENT_GEN $gen
        set -g __secrets_agent_line "# secrets-agent generation $gen"
    end

    function __secrets_agent_prompt --on-event fish_prompt
        set -l s $status
        __secrets_agent_sync
        return $s
    end

    __secrets_agent_sync
end
