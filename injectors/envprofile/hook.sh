# secrets-agent shell hook for sh, bash and zsh. Installed by
# `secrets-agent install-hooks`; remove it with `secrets-agent install-hooks --uninstall`.
#
# It sources env.sh, the environment variables secrets-agent keeps current,
# when the shell starts, and again at each prompt of an interactive bash
# (PROMPT_COMMAND) or zsh (precmd_functions) when the file changed.
#
# Where: $SECRETS_AGENT_ENV_DIR/env.sh if SECRETS_AGENT_ENV_DIR is set, else
# @DEFAULT_DIR_DOC@/env.sh, the agent's default.
#
# Cost: a prompt where nothing changed runs builtins only (read, [, case,
# return): it reads the fragment's first line, "# secrets-agent generation
# <token>", and compares it with the one it sourced last. No fork, no exec.
# $? is preserved.
#
# Variables: at shell start the fragment is sourced as is. Later, a variable
# whose secret is removed is unset and a rotated one is updated, but only if
# it still holds the value this hook set; a variable the user has set,
# changed or unset is left as the user made it (and no longer tracked).
#
# Time: a change costs time linear in the number of variables: no set is
# ever searched as a string, and what the hook knows about a name lives in
# variables of its own: __secrets_agent_v_NAME holds the value this hook
# set (it is set exactly while NAME is tracked), __secrets_agent_n_NAME the
# number of the last sync whose set held NAME; during one sync
# __secrets_agent_k_NAME holds a user's value to keep and
# __secrets_agent_g_NAME marks one the user unset.
# In bash and zsh, when the user touched none of the variables, a change
# that adds or removes no name needs no look at each name to find what the
# user changed; in bash one that does unsets the whole last set at once and
# looks at each name only if one of the new set is the user's. That nothing
# was touched is found out by one printf over the last fragment's
# __SECRETS_AGENT_SNAP line gives every value at once, and it equals that
# fragment's __SECRETS_AGENT_SNAPV line (what the same printf gave right
# after it was sourced) unless one of them was touched. (A value holding
# the separator \037 could let two edits cancel out; a user would have to
# craft that.)
# Then, too, if env.sh.delta takes this shell's generation to a later one,
# only it is sourced (__secrets_agent_delta): the names and values that
# changed, and the next snapshot as one word. So a change of a few
# variables costs that one comparison and a look at each changed name,
# whatever the size of the set, and never the export of every variable
# (zsh's export of one variable searches its whole environment). The agent
# writes no delta for a change of most of the set (envprofile.go).
if [ -z "${__secrets_agent_hook_loaded-}" ]; then
__secrets_agent_hook_loaded=1
__secrets_agent_default_dir=@DEFAULT_DIR@

# __secrets_agent_sync sources env.sh if its generation differs from the one
# this shell sourced last.
__secrets_agent_sync() {
	local __secrets_agent_f __secrets_agent_l1 __secrets_agent_l2 __secrets_agent_n \
		__secrets_agent_kg __secrets_agent_cur
	__secrets_agent_f=${SECRETS_AGENT_ENV_DIR:-$__secrets_agent_default_dir}/env.sh
	# Only a fragment this user owns: a root shell that kept another user's
	# $USER (su without -) must not source a file that user can write.
	[ -r "$__secrets_agent_f" ] && [ -O "$__secrets_agent_f" ] || return 0
	IFS= read -r __secrets_agent_l1 2>/dev/null <"$__secrets_agent_f" || return 0
	[ "x$__secrets_agent_l1" = "x${__secrets_agent_line-}" ] && return 0

	# Changed. Split lists of names on spaces only (zsh splits an unquoted
	# word only with SH_WORD_SPLIT). Every name is [A-Za-z0-9_] (checked
	# before any eval), so globbing cannot change one.
	local IFS=' '
	[ -z "${ZSH_VERSION-}" ] || setopt localoptions shwordsplit
	# Not the first time: if every variable of the last set is tracked and
	# still holds what the last sync left (one printf compares them all),
	# the delta may do (see __secrets_agent_delta).
	local __secrets_agent_clean=0
	if [ -n "${__secrets_agent_line+x}" ] && [ "${__secrets_agent_untracked-1}" = 0 ] &&
		[ -n "${__secrets_agent_snapx-}" ]; then
		__secrets_agent_snapshot
		if [ "x$__secrets_agent_cur" = "x${__secrets_agent_snap-}" ]; then
			__secrets_agent_clean=1
			__secrets_agent_delta "$__secrets_agent_f.delta" && return 0
		fi
	fi

	# Read the names the fragment sets.
	{ IFS= read -r __secrets_agent_l1 && IFS= read -r __secrets_agent_l2; } 2>/dev/null <"$__secrets_agent_f" || return 0
	case $__secrets_agent_l1 in '# secrets-agent generation '*) ;; *) return 0 ;; esac
	case $__secrets_agent_l2 in '# secrets-agent vars'*) ;; *) return 0 ;; esac
	__secrets_agent_l2=${__secrets_agent_l2#'# secrets-agent vars'}
	__secrets_agent_kg=' '
	local __secrets_agent_same=0 __secrets_agent_untouched=0
	[ "x${__secrets_agent_vars-}" = "x$__secrets_agent_l2" ] && __secrets_agent_same=1
	# Lists of nothing but [A-Za-z_][A-Za-z0-9_]* names may be used whole
	# (unset, printf); otherwise each name is checked on its own.
	local __secrets_agent_plain=1
	case "$__secrets_agent_l2 ${__secrets_agent_vars-}" in *[!A-Za-z0-9_\ ]* | *' '[0-9]*) __secrets_agent_plain=0 ;; esac
	# This sync's number marks the names of the new set (__secrets_agent_n_NAME).
	__secrets_agent_syncs=$((${__secrets_agent_syncs-0} + 1))

	# (1) Not the first time: a variable of the new set that the user has
	# set, changed or unset is kept as the user made it. If the last set
	# is as the last sync left it (clean), only a name new to the set can
	# be the user's, and if the set is the same there is nothing to look for.
	if [ -n "${__secrets_agent_line+x}" ]; then
		[ $__secrets_agent_clean = 1 ] && __secrets_agent_untouched=$__secrets_agent_plain
		if [ $__secrets_agent_untouched = 0 ]; then
			for __secrets_agent_n in $__secrets_agent_l2; do
				case $__secrets_agent_n in [0-9]* | *[!A-Za-z0-9_]*) continue ;; esac
				eval "__secrets_agent_n_$__secrets_agent_n=\$__secrets_agent_syncs
					if [ -n \"\${__secrets_agent_v_$__secrets_agent_n+x}\" ] && [ -n \"\${$__secrets_agent_n+x}\" ] &&
						[ \"x\$$__secrets_agent_n\" = \"x\$__secrets_agent_v_$__secrets_agent_n\" ]; then
						: still ours
					elif [ -n \"\${$__secrets_agent_n+x}\" ]; then
						__secrets_agent_k_$__secrets_agent_n=\$$__secrets_agent_n
						__secrets_agent_kg=\"\${__secrets_agent_kg}$__secrets_agent_n \"
					elif [ -n \"\${__secrets_agent_v_$__secrets_agent_n+x}\" ]; then
						__secrets_agent_g_$__secrets_agent_n=1
						__secrets_agent_kg=\"\${__secrets_agent_kg}$__secrets_agent_n \"
					fi"
			done
		elif [ $__secrets_agent_same = 0 ] && [ -z "${ZSH_VERSION-}" ]; then
			# Every variable of the last set is ours and as we left it:
			# take them all away at once (the fragment sets again those it
			# still has), with what tracks them. A name of the new set that
			# is still set is then the user's own: one printf tells whether
			# there is any, and only then is each name looked at.
			unset $__secrets_agent_vars
			printf -v __secrets_agent_cur '__secrets_agent_v_%s ' $__secrets_agent_vars
			unset $__secrets_agent_cur
			__secrets_agent_cur=
			if [ -n "$__secrets_agent_l2" ]; then
				printf -v __secrets_agent_cur '"${%s+x}"' $__secrets_agent_l2
				eval "printf -v __secrets_agent_cur '%s' $__secrets_agent_cur"
			fi
			if [ -n "$__secrets_agent_cur" ]; then
				for __secrets_agent_n in $__secrets_agent_l2; do
					eval "if [ -n \"\${$__secrets_agent_n+x}\" ]; then
							__secrets_agent_k_$__secrets_agent_n=\$$__secrets_agent_n
							__secrets_agent_kg=\"\${__secrets_agent_kg}$__secrets_agent_n \"
						fi"
				done
			fi
			__secrets_agent_vars=
		elif [ $__secrets_agent_same = 0 ]; then
			# zsh, whose unset and export of N exported variables each
			# search its whole environment: only a name new to the set can
			# be the user's.
			for __secrets_agent_n in $__secrets_agent_l2; do
				eval "__secrets_agent_n_$__secrets_agent_n=\$__secrets_agent_syncs
					if [ -z \"\${__secrets_agent_v_$__secrets_agent_n+x}\" ] && [ -n \"\${$__secrets_agent_n+x}\" ]; then
						__secrets_agent_k_$__secrets_agent_n=\$$__secrets_agent_n
						__secrets_agent_kg=\"\${__secrets_agent_kg}$__secrets_agent_n \"
					fi"
			done
		fi
	fi

	# (2) Source it.
	. "$__secrets_agent_f"

	# (3) If the set of names changed: unset ours that the fragment no
	# longer sets, if they still hold our value.
	if [ $__secrets_agent_same = 0 ]; then
		for __secrets_agent_n in ${__secrets_agent_vars-}; do
			case $__secrets_agent_n in [0-9]* | *[!A-Za-z0-9_]*) continue ;; esac
			eval "[ \"\${__secrets_agent_n_$__secrets_agent_n-}\" = \"\$__secrets_agent_syncs\" ] ||
				{
					if [ -n \"\${__secrets_agent_v_$__secrets_agent_n+x}\" ] && [ -n \"\${$__secrets_agent_n+x}\" ] &&
						[ \"x\$$__secrets_agent_n\" = \"x\$__secrets_agent_v_$__secrets_agent_n\" ]; then
						unset $__secrets_agent_n
					fi
					unset __secrets_agent_v_$__secrets_agent_n __secrets_agent_n_$__secrets_agent_n
				}"
		done
	fi

	# (4) Track what the fragment set, with its value.
	for __secrets_agent_n in $__secrets_agent_l2; do
		case $__secrets_agent_n in [0-9]* | *[!A-Za-z0-9_]*) continue ;; esac
		eval "__secrets_agent_v_$__secrets_agent_n=\$$__secrets_agent_n"
	done

	# (5) Put back what the user had; those are no longer tracked.
	__secrets_agent_untracked=0
	for __secrets_agent_n in $__secrets_agent_kg; do
		if eval "[ -n \"\${__secrets_agent_k_$__secrets_agent_n+x}\" ]"; then
			eval "$__secrets_agent_n=\$__secrets_agent_k_$__secrets_agent_n"
			unset "__secrets_agent_k_$__secrets_agent_n"
		else
			unset "$__secrets_agent_n" "__secrets_agent_g_$__secrets_agent_n"
		fi
		unset "__secrets_agent_v_$__secrets_agent_n"
		__secrets_agent_untracked=$((__secrets_agent_untracked + 1))
	done

	# (6) Keep the snapshot of every value for the next change: the
	# fragment's __SECRETS_AGENT_SNAPV is what printf over its
	# __SECRETS_AGENT_SNAP gives now (bash and zsh, which have printf -v;
	# elsewhere step 1 looks at each name).
	__secrets_agent_snapx=
	if [ -n "${BASH_VERSION-}${ZSH_VERSION-}" ] && [ -n "${__SECRETS_AGENT_SNAP-}" ] &&
		[ -n "${__SECRETS_AGENT_SNAPV+x}" ]; then
		__secrets_agent_snap=$__SECRETS_AGENT_SNAPV
		__secrets_agent_snapx=$__SECRETS_AGENT_SNAP
	fi
	__secrets_agent_vars=$__secrets_agent_l2
	__secrets_agent_line="# secrets-agent generation ${__SECRETS_AGENT_GEN-}"
	return 0
}

# __secrets_agent_snapshot sets __secrets_agent_cur to every value of the
# last set at once, as the fragment's __SECRETS_AGENT_SNAPV holds them right
# after it is sourced: "x<value>" for a variable that is set, "" for one
# that is not, each followed by \037. bash runs printf over
# $__secrets_agent_snapx (that fragment's __SECRETS_AGENT_SNAP); zsh, which
# takes time growing faster than N to parse a command of N words, expands
# the names in __secrets_agent_vars in one substitution instead (with zsh's
# own options, whatever the user's are). Only bash and zsh keep a snapshot
# (step (6)).
__secrets_agent_snapshot() {
	if [ -n "${ZSH_VERSION-}" ]; then
		eval 'emulate -L zsh
			setopt extendedglob
			local MATCH MBEGIN MEND
			local -a __secrets_agent_a
			__secrets_agent_a=(${=__secrets_agent_vars})
			__secrets_agent_a=("${(@)__secrets_agent_a/(#m)*/${(P)MATCH+x${(P)MATCH}}}" "")
			__secrets_agent_cur=${(pj:\037:)__secrets_agent_a}'
	else
		eval "printf -v __secrets_agent_cur '%s\037' $__secrets_agent_snapx"
	fi
}

# __secrets_agent_delta sources the delta file $1 (env.sh.delta, written
# by the agent beside env.sh) and applies what it holds if it goes from this
# shell's generation to a later one; otherwise it returns 1 having changed
# nothing (the delta file sets nothing unless the generation it starts from
# is this shell's; see renderDelta in render.go). The caller has found the
# last set clean, so each variable whose value changed or that went away is
# still ours; a name new to the set that the user has set is the user's
# and stays as it is (no longer tracked). It runs in __secrets_agent_sync,
# with IFS and zsh's options as that sets them.
__secrets_agent_delta() {
	[ -f "$1" ] && [ -r "$1" ] && [ -O "$1" ] || return 1
	local __secrets_agent_dgen= __secrets_agent_dset= __secrets_agent_dadd= __secrets_agent_dunset= \
		__secrets_agent_dnames= __secrets_agent_n __secrets_agent_kept=0
	. "$1"
	if [ -z "$__secrets_agent_dgen" ]; then
		# Not for this shell, or cut short: drop what it may have set.
		for __secrets_agent_n in $__secrets_agent_dset $__secrets_agent_dadd; do
			case $__secrets_agent_n in [0-9]* | *[!A-Za-z0-9_]*) continue ;; esac
			unset "__secrets_agent_d_$__secrets_agent_n"
		done
		return 1
	fi
	for __secrets_agent_n in $__secrets_agent_dunset; do
		case $__secrets_agent_n in [0-9]* | *[!A-Za-z0-9_]*) continue ;; esac
		eval "[ -z \"\${__secrets_agent_v_$__secrets_agent_n+x}\" ] ||
			unset $__secrets_agent_n __secrets_agent_v_$__secrets_agent_n"
	done
	for __secrets_agent_n in $__secrets_agent_dset; do
		case $__secrets_agent_n in [0-9]* | *[!A-Za-z0-9_]*) continue ;; esac
		eval "export $__secrets_agent_n=\"\$__secrets_agent_d_$__secrets_agent_n\"
			__secrets_agent_v_$__secrets_agent_n=\$__secrets_agent_d_$__secrets_agent_n
			unset __secrets_agent_d_$__secrets_agent_n"
	done
	for __secrets_agent_n in $__secrets_agent_dadd; do
		case $__secrets_agent_n in [0-9]* | *[!A-Za-z0-9_]*) continue ;; esac
		eval "if [ -n \"\${$__secrets_agent_n+x}\" ]; then
				unset __secrets_agent_v_$__secrets_agent_n
				__secrets_agent_kept=\$((__secrets_agent_kept + 1))
			else
				export $__secrets_agent_n=\"\$__secrets_agent_d_$__secrets_agent_n\"
				__secrets_agent_v_$__secrets_agent_n=\$__secrets_agent_d_$__secrets_agent_n
			fi
			unset __secrets_agent_d_$__secrets_agent_n"
	done
	if [ -n "$__secrets_agent_dnames" ]; then
		__secrets_agent_vars=${__SECRETS_AGENT_VARS:+ $__SECRETS_AGENT_VARS}
		__secrets_agent_snapx=$__SECRETS_AGENT_SNAP
	fi
	# The snapshot for the next change, as step (6) of a full sync keeps
	# it; none if the user kept a variable of the set.
	__secrets_agent_untracked=$__secrets_agent_kept
	if [ $__secrets_agent_kept = 0 ] && [ -n "$__secrets_agent_snapx" ]; then
		__secrets_agent_snap=${__SECRETS_AGENT_SNAPV-}
	else
		__secrets_agent_snapx=
	fi
	__SECRETS_AGENT_GEN=$__secrets_agent_dgen
	__secrets_agent_line="# secrets-agent generation $__secrets_agent_dgen"
	return 0
}

# __secrets_agent_prompt runs at each prompt and keeps $? as it was.
__secrets_agent_prompt() {
	__secrets_agent_status=$?
	__secrets_agent_sync
	return $__secrets_agent_status
}

__secrets_agent_vars=' '
__secrets_agent_sync

case $- in
*i*)
	if [ -n "${BASH_VERSION-}" ]; then
		# Appended, so that what the user's PROMPT_COMMAND does stays as it was.
		case ${PROMPT_COMMAND-} in
		*__secrets_agent_prompt*) ;;
		*) PROMPT_COMMAND="${PROMPT_COMMAND:+$PROMPT_COMMAND
}__secrets_agent_prompt" ;;
		esac
	elif [ -n "${ZSH_VERSION-}" ]; then
		# zsh syntax, in eval so that sh can still parse this file.
		eval 'precmd_functions=(${precmd_functions:#__secrets_agent_prompt} __secrets_agent_prompt)'
	fi
	;;
esac
fi
