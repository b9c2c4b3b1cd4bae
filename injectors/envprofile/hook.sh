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
if [ -z "${__secrets_agent_hook_loaded-}" ]; then
__secrets_agent_hook_loaded=1
__secrets_agent_default_dir=@DEFAULT_DIR@

# __secrets_agent_sync sources env.sh if its generation differs from the one
# this shell sourced last.
__secrets_agent_sync() {
	local __secrets_agent_f __secrets_agent_l1 __secrets_agent_l2 __secrets_agent_n \
		__secrets_agent_rest __secrets_agent_keep __secrets_agent_gone __secrets_agent_new
	__secrets_agent_f=${SECRETS_AGENT_ENV_DIR:-$__secrets_agent_default_dir}/env.sh
	# Only a fragment this user owns: a root shell that kept another user's
	# $USER (su without -) must not source a file that user can write.
	[ -r "$__secrets_agent_f" ] && [ -O "$__secrets_agent_f" ] || return 0
	IFS= read -r __secrets_agent_l1 2>/dev/null <"$__secrets_agent_f" || return 0
	[ "x$__secrets_agent_l1" = "x${__secrets_agent_line-}" ] && return 0

	# Changed (or first time): read the names it sets.
	{ IFS= read -r __secrets_agent_l1 && IFS= read -r __secrets_agent_l2; } 2>/dev/null <"$__secrets_agent_f" || return 0
	case $__secrets_agent_l1 in '# secrets-agent generation '*) ;; *) return 0 ;; esac
	case $__secrets_agent_l2 in '# secrets-agent vars'*) ;; *) return 0 ;; esac
	__secrets_agent_l2="${__secrets_agent_l2#'# secrets-agent vars'} "

	# (1) Not the first time: a variable of the new set that the user has set,
	# changed or unset is kept as it is (value saved in __secrets_agent_k_NAME).
	__secrets_agent_keep=' '
	__secrets_agent_gone=' '
	if [ -n "${__secrets_agent_line+x}" ]; then
		__secrets_agent_rest=$__secrets_agent_l2
		while [ -n "${__secrets_agent_rest# }" ]; do
			__secrets_agent_rest=${__secrets_agent_rest# }
			__secrets_agent_n=${__secrets_agent_rest%% *}
			__secrets_agent_rest=${__secrets_agent_rest#"$__secrets_agent_n"}
			case $__secrets_agent_n in '' | [0-9]* | *[!A-Za-z0-9_]*) continue ;; esac
			case ${__secrets_agent_vars-} in
			*" $__secrets_agent_n "*)
				if eval "[ -n \"\${$__secrets_agent_n+x}\" ] && [ \"x\${$__secrets_agent_n}\" = \"x\${__secrets_agent_v_$__secrets_agent_n}\" ]"; then
					continue # still ours
				fi
				;;
			esac
			if eval "[ -n \"\${$__secrets_agent_n+x}\" ]"; then
				eval "__secrets_agent_k_$__secrets_agent_n=\${$__secrets_agent_n}"
				__secrets_agent_keep="$__secrets_agent_keep$__secrets_agent_n "
			else
				case ${__secrets_agent_vars-} in
				*" $__secrets_agent_n "*) __secrets_agent_gone="$__secrets_agent_gone$__secrets_agent_n " ;;
				esac
			fi
		done
	fi

	# (2) Source it.
	. "$__secrets_agent_f"

	# (3) Put back what the user had.
	__secrets_agent_rest=$__secrets_agent_keep
	while [ -n "${__secrets_agent_rest# }" ]; do
		__secrets_agent_rest=${__secrets_agent_rest# }
		__secrets_agent_n=${__secrets_agent_rest%% *}
		__secrets_agent_rest=${__secrets_agent_rest#"$__secrets_agent_n"}
		eval "$__secrets_agent_n=\$__secrets_agent_k_$__secrets_agent_n"
		unset "__secrets_agent_k_$__secrets_agent_n"
	done
	__secrets_agent_rest=$__secrets_agent_gone
	while [ -n "${__secrets_agent_rest# }" ]; do
		__secrets_agent_rest=${__secrets_agent_rest# }
		__secrets_agent_n=${__secrets_agent_rest%% *}
		__secrets_agent_rest=${__secrets_agent_rest#"$__secrets_agent_n"}
		unset "$__secrets_agent_n"
	done

	# (4) Unset ours that the fragment no longer sets, if they still hold our value.
	__secrets_agent_rest=${__secrets_agent_vars-}
	while [ -n "${__secrets_agent_rest# }" ]; do
		__secrets_agent_rest=${__secrets_agent_rest# }
		__secrets_agent_n=${__secrets_agent_rest%% *}
		__secrets_agent_rest=${__secrets_agent_rest#"$__secrets_agent_n"}
		case " ${__SECRETS_AGENT_VARS-} " in *" $__secrets_agent_n "*) continue ;; esac
		if eval "[ -n \"\${$__secrets_agent_n+x}\" ] && [ \"x\${$__secrets_agent_n}\" = \"x\${__secrets_agent_v_$__secrets_agent_n}\" ]"; then
			unset "$__secrets_agent_n"
		fi
		unset "__secrets_agent_v_$__secrets_agent_n"
	done

	# (5) Track what we set now, with the value we set.
	__secrets_agent_new=' '
	__secrets_agent_rest=" ${__SECRETS_AGENT_VARS-} "
	while [ -n "${__secrets_agent_rest# }" ]; do
		__secrets_agent_rest=${__secrets_agent_rest# }
		__secrets_agent_n=${__secrets_agent_rest%% *}
		__secrets_agent_rest=${__secrets_agent_rest#"$__secrets_agent_n"}
		case $__secrets_agent_n in '' | [0-9]* | *[!A-Za-z0-9_]*) continue ;; esac
		case "$__secrets_agent_keep$__secrets_agent_gone" in
		*" $__secrets_agent_n "*) unset "__secrets_agent_v_$__secrets_agent_n" ;;
		*)
			eval "__secrets_agent_v_$__secrets_agent_n=\${$__secrets_agent_n}"
			__secrets_agent_new="$__secrets_agent_new$__secrets_agent_n "
			;;
		esac
	done
	__secrets_agent_vars=$__secrets_agent_new
	__secrets_agent_line="# secrets-agent generation ${__SECRETS_AGENT_GEN-}"
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
