<?php

$text['title-ai_secretary']['en-us'] = "AI Secretary";
$text['title-ai_secretary']['en-gb'] = "AI Secretary";
$text['title-ai_secretary']['de-de'] = "KI-Sekretariat";
$text['title-ai_secretary']['fr-fr'] = "Secrétaire IA";
$text['title-ai_secretary']['es-mx'] = "Secretaria IA";
$text['title-ai_secretary']['pt-br'] = "Secretária IA";

$text['description-ai_secretary']['en-us'] = "Opening the AI secretary console for this domain…";
$text['description-ai_secretary']['en-gb'] = "Opening the AI secretary console for this domain…";
$text['description-ai_secretary']['de-de'] = "Die Konsole des KI-Sekretariats dieser Domain wird geöffnet…";
$text['description-ai_secretary']['fr-fr'] = "Ouverture de la console du secrétaire IA de ce domaine…";
$text['description-ai_secretary']['es-mx'] = "Abriendo la consola de la secretaria IA de este dominio…";
$text['description-ai_secretary']['pt-br'] = "Abrindo o console da secretária IA deste domínio…";

$text['button-open']['en-us'] = "Open the console";
$text['button-open']['en-gb'] = "Open the console";
$text['button-open']['de-de'] = "Konsole öffnen";
$text['button-open']['fr-fr'] = "Ouvrir la console";
$text['button-open']['es-mx'] = "Abrir la consola";
$text['button-open']['pt-br'] = "Abrir o console";

$text['message-no_key']['en-us'] = "The AI secretary's key file is missing or unreadable: see Default Settings › ai_secretary › token_key_file.";
$text['message-no_key']['en-gb'] = "The AI secretary's key file is missing or unreadable: see Default Settings › ai_secretary › token_key_file.";
$text['message-no_key']['de-de'] = "Die Schlüsseldatei des KI-Sekretariats fehlt oder ist nicht lesbar: siehe Standardeinstellungen › ai_secretary › token_key_file.";
$text['message-no_key']['fr-fr'] = "Le fichier de clé du secrétaire IA est absent ou illisible : voir Paramètres par défaut › ai_secretary › token_key_file.";
$text['message-no_key']['es-mx'] = "Falta el archivo de clave de la secretaria IA o no se puede leer: vea Configuración predeterminada › ai_secretary › token_key_file.";
$text['message-no_key']['pt-br'] = "O arquivo de chave da secretária IA falta ou não pode ser lido: veja Configurações padrão › ai_secretary › token_key_file.";

?>
